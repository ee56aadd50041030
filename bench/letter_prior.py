"""Does dividing the letter reader's readings by its letter prior beat (or complement) reading more
option orders?

    python bench/letter_prior.py                          # record 5 orders per question, then the table
    python bench/letter_prior.py --sets arc-challenge-val --questions 20

A small model prefers some letters whatever the options say. Reading several option orders cancels
that preference (the default triage reads 3, the best ARC reader 5); dividing by the model's letter
prior would remove the rest at no cost. `estimate_slot_prior` fits that prior over a batch of
readings (the exam itself, no answers used): each order's letter log-probabilities as option
content + display-slot preference.

Pass 1 reads every question of each set once, without context, in all 5 cyclic option orders
(Qwen2.5-Coder-1.5B's letter reader, `LetterReader(rotations=5)`), and logs each order's letter
log-probabilities to bench/out/letter-orders/<set>.jsonl (resumed when run again). Pass 2 scores,
from those logs, the first k orders combined as the reader does (mean probability), with the prior
divided out (fitted on the set itself, or on the other sets: a fixed per-model prior), and as a
geometric mean of the orders. Each gain over the shipped reading is paired, with its standard error
over questions. One order alone has nothing to separate the prior from (k starts at 2).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from common import OUT, ROOT, markdown_table, reconstructed_6k_validation, sample_exam
from openbook.exam import read_exam
from openbook.metrics import average_precision_at_3
from openbook.progress import meter
from openbook.readers.base import logsumexp_rows
from openbook.readers.letter import SlotPrior, estimate_slot_prior, option_probabilities, rotation
from openbook.records import OrderReading, Question

DEFAULT_EXAM = ROOT / "src" / "openbook" / "resources" / "default-exam.csv"
ORDERS = 5


def exam_set(name: str, count: int) -> list[Question]:
    if name == "default-exam":
        return read_exam(DEFAULT_EXAM)[:count]
    if name == "llmse-6k-dev-val":
        return reconstructed_6k_validation()[:count]
    return sample_exam(name, count)


def record(questions: list[Question], path: Path, model: str) -> list[dict]:
    """Each question's per-order slot log-probabilities (5 orders, no context), logged and resumed."""
    done = {}
    if path.exists():
        done = {r["id"]: r for r in map(json.loads, path.read_text(encoding="utf-8").splitlines())}
    todo = [q for q in questions if q.id not in done]
    if todo:
        from openbook.backends import load_backend
        from openbook.readers import LetterReader, read_question
        from openbook.records import Context

        backend = load_backend("llama.cpp", model, n_ctx=4096)
        reader = LetterReader(backend, rotations=ORDERS)
        path.parent.mkdir(parents=True, exist_ok=True)
        with (
            path.open("a", encoding="utf-8") as log,
            meter(f"reading {path.stem}", len(todo), ("questions",)) as progress,
        ):
            for question in todo:
                (output,) = read_question([reader], backend, question, Context("", (), 0))
                entry = {
                    "id": question.id,
                    "answer": question.answer,
                    "letters": list(question.letters),
                    "orders": reader.orders(len(question.options)),
                    "slot_logits": output.orders.logprobs,
                }
                log.write(json.dumps(entry) + "\n")
                log.flush()
                done[question.id] = entry
                progress.advance(questions=1)
    return [done[q.id] for q in questions]


def reading(entry: dict, k: int) -> OrderReading:
    """The entry's first k orders as the letter reader keeps them."""
    logits = np.array(entry["slot_logits"][:k])  # the first recordings kept them unnormalised
    return OrderReading(0, tuple(map(tuple, logits - logsumexp_rows(logits)[:, None])))


def scores(entry: dict, k: int, prior: SlotPrior | None) -> np.ndarray:
    return np.array(list(option_probabilities(entry["letters"], reading(entry, k), prior).values()))


def geometric(entry: dict, k: int) -> np.ndarray:
    """The orders' log-probabilities averaged per option instead of their probabilities."""
    n = len(entry["letters"])
    total = np.zeros(n)
    for r, row in enumerate(np.array(reading(entry, k).logprobs)):
        total[rotation(n, r)] += row
    return total


def average_precisions(entries: list[dict], scores: list[np.ndarray]) -> np.ndarray:
    return np.array(
        [
            average_precision_at_3([entry["letters"][i] for i in np.argsort(-s, kind="stable")], entry["answer"])
            for entry, s in zip(entries, scores)
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    parser.add_argument("--sets", nargs="+", default=["default-exam", "arc-challenge-val", "llmse-6k-dev-val"])
    parser.add_argument("--questions", type=int, default=100)
    args = parser.parse_args()

    recorded = {
        name: record(exam_set(name, args.questions), OUT / "letter-orders" / args.model / f"{name}.jsonl", args.model)
        for name in args.sets
    }
    rows = []
    for name, entries in recorded.items():
        others = [e for other, es in recorded.items() if other != name for e in es]
        for k in range(2, ORDERS + 1):
            shipped = average_precisions(entries, [scores(e, k, None) for e in entries])
            variants = {
                "calibrated on the set": estimate_slot_prior(reading(e, k) for e in entries),
                "calibrated on the other sets": estimate_slot_prior(reading(e, k) for e in others) if others else None,
            }
            cells = [name, len(entries), k, f"{shipped.mean():.3f}"]
            for _label, prior in variants.items():
                if prior is None or any(len(e["letters"]) not in prior for e in entries):
                    cells.append("–")
                    continue
                gain = average_precisions(entries, [scores(e, k, prior) for e in entries]) - shipped
                cells.append(
                    f"{shipped.mean() + gain.mean():.3f} ({gain.mean():+.3f} ± {gain.std(ddof=1) / np.sqrt(len(gain)):.3f})"
                )
            geo = average_precisions(entries, [geometric(e, k) for e in entries]) - shipped
            cells.append(f"{shipped.mean() + geo.mean():.3f} ({geo.mean():+.3f})")
            prior = variants["calibrated on the set"]
            cells.append(" / ".join(f"{n}: " + " ".join(f"{p:.2f}" for p in prior[n]) for n in sorted(prior)))
            rows.append(cells)
            print(cells, file=sys.stderr, flush=True)
    print(f"\n{args.model}, letter reader without context; MAP@3 (paired gain ± standard error over questions)\n")
    print(
        markdown_table(
            [
                "set",
                "questions",
                "orders",
                "mean of orders (shipped)",
                "calibrated on the set",
                "calibrated on the other sets",
                "geometric mean of orders",
                "slot log-preference fitted on the set (per option count)",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
