"""Shared by the benchmarks and experiments: where the data is, seeded samples of exams, the
full-corpus index, contexts retrieved as a plan retrieves them, and markdown tables."""

from __future__ import annotations

import csv
import json
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from openbook.exam import read_exam
from openbook.records import Question, RetrievedContext

if TYPE_CHECKING:  # the answer path is imported where contexts are wanted, not by every benchmark
    from openbook.answer import AnswerOptions

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "bench" / "out"
DEFAULT_INDEX = ROOT / "runs" / "default-index"  # the default knowledge base, as `make demo` builds it
DEFAULT_EXAM = ROOT / "src" / "openbook" / "resources" / "default-exam.csv"
OPENBOOK = [sys.executable, "-c", "from openbook.cli.main import app; app()"]  # the CLI, in this interpreter
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


def arc_sample() -> Path:
    """arc-challenge-val-100: the 100 arc-challenge-val questions of seed 2023, written once under bench/out."""
    path = OUT / "arc-challenge-val-100.csv"
    if not path.exists():
        write_exam(sample_exam("arc-challenge-val", 100), path)
    return path


def reconstructed_6k_validation() -> list[Question]:
    """The llmse-6k-dev questions of `openbook train encoder`'s validation split at its defaults
    (llmse-6k-dev + llmse-stem-1k less the default exam, fraction 0.1, seed 13), in split order: the
    held-out 6k questions of bench/experiments/ensemble.py, without needing the trained encoder."""
    from openbook.train.data import split, training_questions

    exams = [read_exam(SHARED / "exams" / "llmse-6k-dev.csv"), read_exam(SHARED / "exams" / "llmse-stem-1k.csv")]
    exclude = read_exam(DEFAULT_EXAM)
    _, validation = split(training_questions(exams, exclude), 0.1, 13)
    by_id = {q.id: q for q in exams[0]}
    return [by_id[q.id.split(":", 1)[1]] for q in validation if q.id.startswith("0:")]


def question_characters(question: Question) -> int:
    """The characters a reader reads of a question: its prompt and every option."""
    return len(question.prompt) + sum(len(text) for text in question.options.values())


LONG_QUESTION = 600  # characters (prompt + options): where the LLM Science Exam's own questions lie


def budget_exams() -> dict[str, Path]:
    """The dev exams of three lengths the budget is measured on, written once under bench/out/exams:
    the default exam (short), 200 held-out llmse-6k-dev questions (medium), the held-out llmse-6k-dev
    questions of >= 600 characters (long, the first 100), and arc-challenge-val-100 (short, context
    often unhelpful). Held out: both llmse slices come from `reconstructed_6k_validation`, the questions
    `openbook train` keeps out of training at its defaults."""
    held_out = reconstructed_6k_validation()
    slices = {
        "llmse-6k-val-200": held_out[:200],
        "llmse-6k-val-long-100": [q for q in held_out if question_characters(q) >= LONG_QUESTION][:100],
    }
    paths = {"default-exam": DEFAULT_EXAM}
    for name, questions in slices.items():
        path = OUT / "exams" / f"{name}.csv"
        if not path.exists():
            write_exam(questions, path)
        paths[name] = path
    paths["arc-challenge-val-100"] = arc_sample()
    return paths


def full_index(chunk_size: int = 512) -> Path:
    """The index of wiki-2015-core + vital summaries + exam passages, built once under bench/out."""
    from openbook.corpus import ChunkSettings
    from openbook.index.build import IndexSettings, build_index

    out = OUT / f"full-index-{chunk_size}"
    if not (out / "manifest.json").exists():
        print(f"building {out} (a few minutes)…", file=sys.stderr)
        build_index(FULL_CORPUS, out, IndexSettings(chunk=ChunkSettings(size=chunk_size)), overwrite=True)
    return out


def write_exam(questions: Sequence[Question], path: Path) -> Path:
    """`questions` as an exam CSV (id, prompt, A-E, answer) that `openbook eval` and `read_exam` read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "prompt", "A", "B", "C", "D", "E", "answer"])
        for q in questions:
            writer.writerow([q.id, q.prompt, *(q.options.get(letter, "") for letter in "ABCDE"), q.answer])
    return path


def plan_contexts(
    questions: Sequence[Question], options: AnswerOptions, count_tokens: Callable[[str], int]
) -> list[list[RetrievedContext]]:
    """Per question, the contexts the plan of `options` retrieves and packs for the stage that reads
    context (a cascade's main stage), counted in `count_tokens` (the reading model's tokens)."""
    from openbook.answer import make_plan
    from openbook.answer.stages import open_retrieval, retrieve_contexts

    plan = make_plan(options)
    stage = plan.main_stage
    return retrieve_contexts(questions, open_retrieval(stage.context), stage.context, count_tokens)


def answered_run(options: AnswerOptions, questions: Sequence[Question]) -> dict:
    """`questions` answered by `run_exam` into `options.out` (resumed where a run stopped); its
    metrics. A folder that holds an answer to every question already is read, not run again."""
    from openbook.evaluate.run import run_exam
    from openbook.runlog import PREDICTIONS_FILE, read_records

    assert options.out is not None
    metrics = options.out / "metrics.json"
    if metrics.is_file() and len(read_records(options.out / PREDICTIONS_FILE)) >= len(questions):
        return json.loads(metrics.read_text())
    outcome = run_exam(replace(options, resume=True), questions=questions)
    if outcome.run.failure is not None:
        sys.exit(f"{options.out}: {outcome.run.failure}")
    return outcome.metrics


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
