"""Embedded defaults: a small Wikipedia knowledge base and a 100-question exam (see ATTRIBUTION.md)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

_HERE = files(__name__)
DEFAULT_KB = ("wiki-vital-summaries.jsonl.zst", "wiki-exam-passages.jsonl.zst")
DEFAULT_EXAM = "default-exam.csv"


def default_knowledge_base() -> list[Path]:
    return [Path(str(_HERE / name)) for name in DEFAULT_KB]


def default_exam() -> Path:
    return Path(str(_HERE / DEFAULT_EXAM))
