"""Exams: Kaggle-layout CSV or JSONL multiple-choice questions, validated on load."""

from openbook.exam.load import read_exam

__all__ = ["read_exam"]
