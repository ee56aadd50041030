"""Shared fixtures: tiny corpora and exams written by the tests themselves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from openbook.records import Question

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

ARTICLES = [
    (
        "1",
        "Photosynthesis",
        "Photosynthesis is the process by which green plants use sunlight to make glucose. "
        "Chlorophyll absorbs mostly blue and red light. Oxygen is released as a by-product.",
    ),
    (
        "2",
        "Mitochondrion",
        "The mitochondrion is the powerhouse of the cell. It produces ATP by cellular "
        "respiration. Mitochondria have their own DNA, inherited from the mother.",
    ),
    (
        "3",
        "Plate tectonics",
        "Plate tectonics describes the motion of the lithosphere. Earthquakes and volcanoes "
        "occur mostly at plate boundaries. The theory was accepted in the 1960s.",
    ),
    (
        "4",
        "Speed of light",
        "The speed of light in vacuum is exactly 299792458 metres per second. Nothing with "
        "mass can travel at the speed of light. Light slows down in glass and water.",
    ),
]

FACTS = [  # (prompt, right answer, wrong answers): each answerable from the fixture articles
    (
        "Which organelle is the powerhouse of the cell?",
        "The mitochondrion",
        ["The nucleus", "The ribosome", "The vacuole", "The cell wall"],
    ),
    ("What do green plants release during photosynthesis?", "Oxygen", ["Nitrogen", "Helium", "Methane", "Argon"]),
    (
        "Where do earthquakes mostly occur?",
        "At plate boundaries",
        ["At the poles", "In deep oceans only", "On the Moon", "Inside the core"],
    ),
    (
        "What is the speed of light in vacuum?",
        "299792458 metres per second",
        ["340 metres per second", "1000 km per hour", "9.8 metres per second", "12 metres per second"],
    ),
    ("What does chlorophyll mostly absorb?", "Blue and red light", ["Green light", "X-rays", "Radio waves", "Sound"]),
    ("What do mitochondria produce?", "ATP", ["Glucose", "Chlorophyll", "Oxygen", "Starch"]),
    (
        "From whom is mitochondrial DNA inherited?",
        "The mother",
        ["The father", "Both parents", "Neither parent", "The grandfather"],
    ),
    ("When was plate tectonics accepted?", "In the 1960s", ["In the 1860s", "In 1492", "In the 2010s", "In antiquity"]),
]


def fact_exam(copies: int = 2) -> list[Question]:
    """The facts with the right answer in rotating positions (the model cannot learn a letter)."""
    questions = []
    for copy in range(copies):
        for number, (prompt, right, wrong) in enumerate(FACTS):
            texts = list(wrong[:4])
            position = (number + copy) % 5
            texts.insert(position, right)
            letters = "ABCDE"
            questions.append(Question(f"{copy}-{number}", prompt, dict(zip(letters, texts)), letters[position]))
    return questions


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def articles_jsonl(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "articles.jsonl", [{"id": i, "title": t, "text": x} for i, t, x in ARTICLES])


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not beside the repository")
    return SHARED_DATA


@pytest.fixture
def bm25_index(tmp_path: Path, articles_jsonl: Path) -> Path:
    """An index of ARTICLES (BM25 only), built as `openbook index` builds it."""
    from openbook.index.build import build_index

    index = tmp_path / "index"
    build_index([articles_jsonl], index, show_progress=False)
    return index
