"""The default cascade replayed over recorded readings, each step it shares with a real run taken by
the library's own function:

- the first-pass answer and a re-read question's answer: `openbook.answer.decide.decide` (the mean
  of the deciding outputs, or a fitted ensemble);
- the order of re-reading: `openbook.answer.decide.margin`, smallest first, below the default
  `--escalate-margin`;
- the routing: `question_coverage` of the passages a recorded context packed (`packed_texts`), at
  least `--context-coverage` to read context;
- the full-order reading a re-read without context ends with: `complete_rotations` of the triage's
  orders and the remaining ones, from bench/experiments/letter_prior.py's recordings;
- each letter reading from its recorded orders: `option_probabilities`, under a letter prior where
  one is given (`estimate_slot_prior`).

What a replay adds is the budget. A real run measures its pace as it goes; a replay plans each kind
of re-read at a given pace (seconds/question), so the same readings can be replayed at any budget:
a question goes ahead, hardest first, while its kind's pace fits the budget left.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import OUT  # noqa: E402
from openbook.answer import AnswerOptions  # noqa: E402
from openbook.answer.decide import decide, margin  # noqa: E402
from openbook.answer.plan import Decider  # noqa: E402
from openbook.ensemble import Ensemble  # noqa: E402
from openbook.ensemble.features import ScoredQuestion  # noqa: E402
from openbook.metrics import Scores, score_rankings  # noqa: E402
from openbook.readers.base import logsumexp_rows, option_probabilities  # noqa: E402
from openbook.readers.letter import SlotPrior, complete_rotations, orders_read, rotation_reader_name  # noqa: E402
from openbook.records import (  # noqa: E402
    LETTERS,
    NO_CONTEXT,
    TRIAGE_SUFFIX,
    OrderReading,
    Prediction,
    Question,
    ReaderOutput,
)
from openbook.retrieve.context import packed_texts, question_coverage  # noqa: E402
from openbook.runlog import result_of  # noqa: E402

DEFAULTS = AnswerOptions()  # the shipped cascade's rule: margin, coverage threshold, option orders
TRIAGE_ORDERS = DEFAULTS.triage_rotations or DEFAULTS.rotations
LETTER_ORDERS = OUT / "letter-orders"  # bench/experiments/letter_prior.py: 5 orders per question, no context


# recorded letter orders (bench/experiments/letter_prior.py)


def letter_orders_file(set_name: str, model: str) -> Path:
    return LETTER_ORDERS / model / f"{set_name}.jsonl"


def recorded_orders(set_name: str, model: str) -> dict[str, dict]:
    """Question id -> its recording: letters, answer and each order's letter log-probabilities."""
    path = letter_orders_file(set_name, model)
    if not path.exists():
        raise SystemExit(
            f"no recorded letter orders in {path}: run "
            f"`python bench/experiments/letter_prior.py --sets {set_name} --model {model}` first"
        )
    return {entry["id"]: entry for entry in map(json.loads, path.read_text(encoding="utf-8").splitlines())}


def order_reading(entry: dict, first: int, count: int) -> OrderReading:
    """Orders first .. first + count - 1 of a recording, each normalised over its letters as
    `LetterReader.order_reading` keeps them (a recording may hold them unnormalised)."""
    logits = np.array(entry["slot_logits"][first : first + count])
    return OrderReading(first, tuple(map(tuple, logits - logsumexp_rows(logits)[:, None])))


def letter_output(entry: dict, orders: int, prior: SlotPrior | None = None) -> ReaderOutput:
    """The no-context letter reader over the first `orders` orders (`LetterReader(rotations=orders)`),
    under `prior` where given; named as a one-stage run names it with no context (`letter-rot3@none`)."""
    reading = order_reading(entry, 0, orders)
    probabilities = option_probabilities(entry["letters"], reading, prior)
    return ReaderOutput(
        entry["id"], f"{rotation_reader_name(orders)}@{NO_CONTEXT.retrieval}", probabilities, orders=reading
    )


def full_order_output(entry: dict, triage: ReaderOutput, prior: SlotPrior | None = None) -> ReaderOutput | None:
    """The reading a re-read without context ends with: the triage's orders completed with the rest
    (`complete_rotations`, as the cascade completes them), or None where the triage read every order."""
    assert triage.orders is not None
    first = len(triage.orders.logprobs)
    left = orders_read(len(LETTERS), first, len(entry["letters"]))
    if left == 0:
        return None
    rest = ReaderOutput(entry["id"], "rest", {}, orders=order_reading(entry, first, left))
    full = complete_rotations(triage, rest, len(LETTERS), entry["letters"], prior)
    return replace(full, reader=f"{full.reader}@{NO_CONTEXT.retrieval}")


# recorded runs (predictions.jsonl)


def recorded_coverage(record: dict, question: Question) -> float:
    """The question's coverage by the contexts a run logged for it, as the cascade measures it."""
    result = result_of(record, question)
    return max((question_coverage(question, packed_texts(c.hits, c.context)) for c in result.contexts), default=0.0)


def reread(record: dict) -> bool:
    """Whether a cascade's logged question was read again by its main stage."""
    return any(not name.endswith(TRIAGE_SUFFIX) for name in record["readers"])


def outputs_of(question: ScoredQuestion) -> dict[str, ReaderOutput]:
    """A joined question's readers as reader outputs (probabilities per letter)."""
    return {
        name: ReaderOutput(question.id, name, dict(zip(question.letters, map(float, probabilities))))
        for name, probabilities in question.readers.items()
    }


# the replay


@dataclass(frozen=True)
class Item:
    """One question as the replay sees it: the triage reading, the main stage's reading with context,
    the full-order reading (routed replays) and the coverage of its context (None: not routed)."""

    question: Question
    triage: ReaderOutput
    context: ReaderOutput
    full_orders: ReaderOutput | None = None
    coverage: float | None = None


@dataclass(frozen=True)
class Pace:
    """Seconds/question of the triage pass, of a re-read with context and of one in the remaining orders."""

    triage: float
    context: float
    orders: float = math.inf


@dataclass(frozen=True)
class Replayed:
    predictions: list[Prediction]
    with_context: int
    in_more_orders: int
    seconds_per_question: float
    scores: Scores


def replay(
    items: Sequence[Item],
    pace: Pace,
    budget: float,
    decided_by: Decider = "mean of both stages",
    threshold: float | None = None,
    ensembles: Sequence[Ensemble] | None = None,
) -> Replayed:
    """The cascade over `items` at `budget` seconds/question (inf: every candidate re-read). With a
    `threshold`, a question whose coverage is below it is re-read in its remaining option orders
    (decided by that full-order reading), any other with context; `decided_by` the ensemble:
    `ensembles[i]` decides item i."""
    n = len(items)
    predictions = [decide(item.question, [item.triage], (), None) for item in items]
    hardest = sorted((margin(p), i) for i, p in enumerate(predictions) if margin(p) < DEFAULTS.escalate_margin)
    spent, counts = pace.triage * n, {"context": 0, "orders": 0}
    for _, i in hardest:
        item = items[i]
        routed = threshold is not None and item.coverage is not None and item.coverage < threshold
        kind = "orders" if routed else "context"
        if kind == "orders" and item.full_orders is None:
            continue  # its triage reading saw every order already
        cost = pace.orders if kind == "orders" else pace.context
        if spent + cost > budget * n:
            continue  # a cheaper kind may still fit
        spent += cost
        counts[kind] += 1
        if kind == "orders":
            assert item.full_orders is not None
            predictions[i] = decide(item.question, [item.full_orders], (), None)
        elif decided_by == "main stage":
            predictions[i] = decide(item.question, [item.context], (), None)
        elif decided_by == "ensemble":
            assert ensembles is not None
            predictions[i] = decide(item.question, [item.triage, item.context], (), ensembles[i])
        else:
            predictions[i] = decide(item.question, [item.triage, item.context], (), None)
    scores = score_rankings((p.ranking, item.question.answer) for p, item in zip(predictions, items))
    return Replayed(predictions, counts["context"], counts["orders"], spent / max(n, 1), scores)


def alone(questions: Sequence[Question], outputs: Sequence[ReaderOutput]) -> Scores:
    """One reading per question, as a one-stage run of that reader decides it."""
    return score_rankings((decide(q, [o], (), None).ranking, q.answer) for q, o in zip(questions, outputs))
