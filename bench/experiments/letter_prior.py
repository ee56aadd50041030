"""Does dividing the letter reader's readings by its letter prior (`--letter-prior`) beat, or
complement, reading more option orders?

    python bench/experiments/letter_prior.py                  # record 5 orders per question, then the table
    python bench/experiments/letter_prior.py --sets arc-challenge-val --questions 20

A small model prefers some letters whatever the options say. Reading several option orders cancels
that preference (the default triage reads 3, ARC's best reader 5); dividing by the model's letter
prior would remove the rest at no cost.

Pass 1 reads every question of each set once, without context, in all 5 cyclic option orders
(`LetterReader(rotations=5)`), and logs each order's letter log-probabilities to
bench/out/letter-orders/<model>/<set>.jsonl (resumed when run again). The first k orders of such a
recording are what `LetterReader(rotations=k)` reads, so bench/experiments/triage.py and ensemble.py
replay the 3- and 5-order readers from it.

Pass 2 scores, from those logs, the first k orders combined as the reader combines them (mean
probability, `option_probabilities`); with the prior divided out as `openbook answer --letter-prior`
divides it (`apply_letter_prior`: fitted over the set's own first pass, no answers used); with a
prior fitted on the other sets instead (a fixed per-model prior: `estimate_slot_prior` over their
readings, `with_slot_prior`); and, as an alternative the library does not offer, the geometric mean
of the orders. Each gain over the plain reading is paired, with its standard error over questions.
One order alone has nothing to separate the prior from (k starts at 2).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import DEFAULT_EXAM, markdown_table, reconstructed_6k_validation, sample_exam  # noqa: E402
from experiments.replay import letter_orders_file, letter_output, order_reading  # noqa: E402
from openbook.answer.decide import apply_letter_prior, decide  # noqa: E402
from openbook.exam import read_exam  # noqa: E402
from openbook.metrics import average_precision_at_3  # noqa: E402
from openbook.progress import meter  # noqa: E402
from openbook.readers.base import rotation  # noqa: E402
from openbook.readers.letter import SlotPrior, estimate_slot_prior, with_slot_prior  # noqa: E402
from openbook.records import Prediction, Question, QuestionResult  # noqa: E402

ORDERS = 5


def exam_set(name: str, count: int) -> list[Question]:
    if name == "default-exam":
        return read_exam(DEFAULT_EXAM)[:count]
    if name == "llmse-6k-dev-val":
        return reconstructed_6k_validation()[:count]
    return sample_exam(name, count)


def record(questions: list[Question], path: Path, model: str) -> list[dict]:
    """Each question's per-order letter log-probabilities (5 orders, no context), logged and resumed."""
    done = {}
    if path.exists():
        done = {r["id"]: r for r in map(json.loads, path.read_text(encoding="utf-8").splitlines())}
    todo = [q for q in questions if q.id not in done]
    if todo:
        from openbook.backends import load_backend
        from openbook.readers import LetterReader, read_question
        from openbook.records import NO_CONTEXT

        backend = load_backend("llama.cpp", model, n_ctx=4096)
        reader = LetterReader(backend, rotations=ORDERS)
        path.parent.mkdir(parents=True, exist_ok=True)
        with (
            path.open("a", encoding="utf-8") as log,
            meter(f"reading {path.stem}", len(todo), ("questions",)) as progress,
        ):
            for question in todo:
                (output,) = read_question([reader], backend, question, NO_CONTEXT.context)
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


def first_pass(questions: list[Question], entries: list[dict], k: int) -> list[QuestionResult]:
    """The set read by the k-order letter reader as a first pass: one output per question, decided alone."""
    results = []
    for question, entry in zip(questions, entries):
        output = letter_output(entry, k)
        results.append(QuestionResult(question, decide(question, [output], (), None), [output], []))
    return results


def with_prior(results: list[QuestionResult], prior: SlotPrior) -> list[Prediction]:
    """Each first-pass answer with its reading divided by a prior fitted elsewhere."""
    return [
        decide(r.question, [with_slot_prior(o, r.question.letters, prior) for o in r.outputs], (), None)
        for r in results
    ]


def geometric(entry: dict, k: int) -> list[str]:
    """The ranking when the orders' log-probabilities are averaged per option instead of their probabilities."""
    n = len(entry["letters"])
    total = np.zeros(n)
    for r, row in enumerate(np.array(order_reading(entry, 0, k).logprobs)):
        total[rotation(n, r)] += row
    return [entry["letters"][i] for i in np.argsort(-total, kind="stable")]


def precisions(questions: list[Question], rankings) -> np.ndarray:
    return np.array([average_precision_at_3(list(r), q.answer) for q, r in zip(questions, rankings)])


def gain_cell(base: np.ndarray, other: np.ndarray, error: bool = True) -> str:
    gain = other - base
    spread = f" ± {gain.std(ddof=1) / np.sqrt(len(gain)):.3f}" if error and len(gain) > 1 else ""
    return f"{other.mean():.3f} ({gain.mean():+.3f}{spread})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    parser.add_argument("--sets", nargs="+", default=["default-exam", "arc-challenge-val", "llmse-6k-dev-val"])
    parser.add_argument("--questions", type=int, default=100)
    args = parser.parse_args()

    sets = {name: exam_set(name, args.questions) for name in args.sets}
    recorded = {
        name: record(questions, letter_orders_file(name, args.model), args.model) for name, questions in sets.items()
    }
    rows = []
    for name, entries in recorded.items():
        questions = sets[name]
        others = [e for other, es in recorded.items() if other != name for e in es]
        for k in range(2, ORDERS + 1):
            results = first_pass(questions, entries, k)
            plain = precisions(questions, [r.prediction.ranking for r in results])
            calibrated = list(results)
            prior = apply_letter_prior(calibrated, None, False, None)  # in place, as `--letter-prior` does
            cells = [name, len(entries), k, f"{plain.mean():.3f}"]
            cells.append(gain_cell(plain, precisions(questions, [r.prediction.ranking for r in calibrated])))
            fixed = estimate_slot_prior(order_reading(e, 0, k) for e in others) if others else None
            if fixed is None or any(len(e["letters"]) not in fixed for e in entries):
                cells.append("–")
            else:
                cells.append(gain_cell(plain, precisions(questions, [p.ranking for p in with_prior(results, fixed)])))
            cells.append(gain_cell(plain, precisions(questions, [geometric(e, k) for e in entries]), error=False))
            (fitted,) = prior.values()
            cells.append(" / ".join(f"{n}: " + " ".join(f"{p:.2f}" for p in fitted[n]) for n in sorted(fitted)))
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
                "letter prior fitted on the set (--letter-prior)",
                "prior fitted on the other sets",
                "geometric mean of orders",
                "slot log-preference fitted on the set (per option count)",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
