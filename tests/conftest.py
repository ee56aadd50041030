"""Shared fixtures: tiny corpora and exams written by the tests themselves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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
