"""Shared by the benchmarks: where the data is, seeded samples of exams, the full-corpus index."""

from __future__ import annotations

import random
import sys
from pathlib import Path

from openbook.exam import read_exam
from openbook.records import Question

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "bench" / "out"
FULL_CORPUS = [
    SHARED / "corpus" / "wiki-2015-core.wikiextractor.txt.zst",
    SHARED / "corpus" / "wiki-vital-summaries.jsonl.zst",
    SHARED / "corpus" / "wiki-exam-passages.jsonl.zst",
]


def sample_exam(name: str, count: int, seed: int = 2023) -> list[Question]:
    """`count` questions of ../shared/data/exams/<name>.csv, a seeded sample in file order."""
    questions = read_exam(SHARED / "exams" / f"{name}.csv")
    if count >= len(questions):
        return questions
    picked = sorted(random.Random(seed).sample(range(len(questions)), count))
    return [questions[i] for i in picked]


def reconstructed_6k_validation() -> list[Question]:
    """The llmse-6k-dev questions of `openbook train encoder`'s validation split at its defaults
    (llmse-6k-dev + llmse-stem-1k less the default exam, fraction 0.1, seed 13), in split order: the
    held-out 6k questions of bench/ensemble.py, without needing the trained encoder."""
    from openbook.train.data import split, training_questions

    exams = [read_exam(SHARED / "exams" / "llmse-6k-dev.csv"), read_exam(SHARED / "exams" / "llmse-stem-1k.csv")]
    exclude = read_exam(ROOT / "src" / "openbook" / "resources" / "default-exam.csv")
    _, validation = split(training_questions(exams, exclude), 0.1, 13)
    by_id = {q.id: q for q in exams[0]}
    return [by_id[q.id.split(":", 1)[1]] for q in validation if q.id.startswith("0:")]


def full_index(chunk_size: int = 512) -> Path:
    """The index of wiki-2015-core + vital summaries + exam passages, built once under bench/out."""
    from openbook.corpus import ChunkSettings
    from openbook.index.build import IndexSettings, build_index

    out = OUT / f"full-index-{chunk_size}"
    if not (out / "manifest.json").exists():
        print(f"building {out} (a few minutes)…", file=sys.stderr)
        build_index(FULL_CORPUS, out, IndexSettings(chunk=ChunkSettings(size=chunk_size)), overwrite=True)
    return out


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
