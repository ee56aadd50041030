"""Training data shared by the trainers: exams de-duplicated and kept apart from the questions you
report, a seeded validation split, and contexts retrieved and packed once (OUT/data.jsonl) so a
resumed run trains on exactly the same text."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path

from openbook.files import write_atomically
from openbook.progress import meter
from openbook.records import Context, Question
from openbook.retrieve import Retrieval
from openbook.retrieve.context import pack_context

DATA_FILE = "data.jsonl"


def normalised_prompt(prompt: str) -> str:
    return " ".join(prompt.lower().split())


def training_questions(exams: Sequence[Sequence[Question]], exclude: Sequence[Question]) -> list[Question]:
    """Answered questions of all exams, de-duplicated by prompt, less the excluded prompts; ids are
    made unique as `exam-number:id`."""
    banned = {normalised_prompt(q.prompt) for q in exclude}
    seen: set[str] = set()
    kept = []
    for number, exam in enumerate(exams):
        for question in exam:
            key = normalised_prompt(question.prompt)
            if question.answer in question.letters and key not in banned and key not in seen:
                seen.add(key)
                kept.append(Question(f"{number}:{question.id}", question.prompt, question.options, question.answer))
    return kept


def split(questions: Sequence[Question], fraction: float, seed: int) -> tuple[list[Question], list[Question]]:
    order = list(range(len(questions)))
    random.Random(seed).shuffle(order)
    cut = max(1, int(round(len(questions) * fraction))) if fraction > 0 else 0
    return [questions[i] for i in order[cut:]], [questions[i] for i in order[:cut]]


def _question_record(question: Question, context: Context, part: str) -> dict[str, object]:
    return {
        "id": question.id,
        "prompt": question.prompt,
        "options": question.options,
        "answer": question.answer,
        "context": context.text,
        "passages": list(context.passage_ids),
        "part": part,
    }


def prepare_data(
    questions: Sequence[Question],
    index: Path,
    settings,
    count_tokens: Callable[[str], int],
    out: Path,
    show_progress: bool,
) -> None:
    """Split, retrieve and pack every question's context once, into OUT/data.jsonl. `settings` names
    retrieval, passages, context_tokens (counted by `count_tokens`, the trained model's tokens),
    validation_fraction, max_questions and seed."""
    train, validation = split(questions, settings.validation_fraction, settings.seed)
    if settings.max_questions is not None:
        train = train[: settings.max_questions]
    retrieval = Retrieval(index)
    spec = retrieval.resolve(settings.retrieval)
    records = []
    every = [*((q, "train") for q in train), *((q, "validation") for q in validation)]
    with meter("retrieving contexts", len(every), ("questions",), enabled=show_progress) as m:
        for start in range(0, len(every), 256):
            batch = every[start : start + 256]
            hit_lists = retrieval.search([q for q, _ in batch], spec, settings.passages)
            for (question, part), hits in zip(batch, hit_lists):
                records.append(
                    _question_record(question, pack_context(hits, settings.context_tokens, count_tokens), part)
                )
            m.advance(completed=start + len(batch), questions=len(batch))
    write_atomically(out / DATA_FILE, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def load_data(out: Path) -> tuple[list[tuple[Question, Context]], list[tuple[Question, Context]]]:
    parts: dict[str, list] = {"train": [], "validation": []}
    for line in (out / DATA_FILE).read_text(encoding="utf-8").split("\n"):  # not splitlines: see exam/load.py
        if not line:
            continue
        r = json.loads(line)
        parts[r["part"]].append(
            (Question(r["id"], r["prompt"], r["options"], r["answer"]), Context(r["context"], tuple(r["passages"]), 0))
        )
    return parts["train"], parts["validation"]
