"""The letter reader: lettered options in the prompt; P(letter) of the answer's first token.

Permutation debiasing: `rotations` = k shows the options in k cyclic rotations (k=1 is the plain
order). The context and question are the shared prefix, evaluated once; the k option listings are
continuations scored together in one batch. Each option's probability is averaged over the
rotations in its original position, cancelling the model's preference for particular letters.
With k equal to the number of options, every option is shown once in every position, so the result
does not depend on which cyclic order the options came in. `first_rotation` skips the first orders,
so that a reading over few orders can be completed later (`complete_rotations`) without reading them
twice.

Letter prior: the model's preference for some letters, which rotations cancel by reading more
orders, can instead be divided out of the orders read. The prior (`estimate_slot_prior`) is fitted
over a batch of readings (the exam itself, no answers needed) as the part of each order's letter
log-probabilities that follows the display slot rather than the option shown there, and every
order's slot probabilities are divided by it before the orders are averaged (`option_probabilities`). Each output keeps its
uncalibrated `OrderReading`, so a prior can be (re)applied to it at any time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import replace

import numpy as np

from openbook.backends.base import Backend
from openbook.readers.base import (
    ReadPlan,
    SlotPrior,
    logsumexp_rows,
    option_probabilities,
    rotation,
    spelling_ids,
    user_text_then_tail,
)
from openbook.records import LETTERS, OrderReading, Question, ReaderOutput

INSTRUCTION = "Answer with the letter of the correct option only."


class LetterReader:
    def __init__(self, backend: Backend, rotations: int = 1, first_rotation: int = 0):
        if not 1 <= rotations <= len(LETTERS):
            raise ValueError(f"rotations must be 1-{len(LETTERS)}, got {rotations}")
        if not 0 <= first_rotation < rotations:
            raise ValueError(f"first_rotation must be 0-{rotations - 1}, got {first_rotation}")
        self.backend = backend
        self.rotations = rotations
        self.first_rotation = first_rotation
        self.name = rotation_reader_name(rotations) + (f"-from{first_rotation}" if first_rotation else "")
        self._letter_ids = spelling_ids(backend, LETTERS)

    def orders(self, n_options: int) -> list[list[int]]:
        """Display slot j of rotation r shows option (j + r) mod n."""
        k = min(self.rotations, n_options)
        return [rotation(n_options, r) for r in range(self.first_rotation, k)]

    def plan(self, question: Question) -> ReadPlan:
        texts = list(question.options.values())
        if not self.orders(len(texts)):
            raise ValueError(
                f"question {question.id!r} has {len(texts)} options: no order left after the "
                f"first {self.first_rotation}"
            )
        continuations = []
        for order in self.orders(len(texts)):
            listing = "\n".join(f"{LETTERS[slot]}. {texts[option]}" for slot, option in enumerate(order))
            continuations.append(user_text_then_tail(self.backend, f"{listing}\n{INSTRUCTION}"))
        targets = [i for ids in self._letter_ids[: len(texts)] for i in ids]
        return ReadPlan(continuations, targets)

    def order_reading(self, question: Question, logprobs: np.ndarray) -> OrderReading:
        """Each order's letter log-probabilities, every spelling of a letter pooled."""
        n = len(question.options)
        bounds = np.cumsum([0] + [len(ids) for ids in self._letter_ids[:n]])
        pooled = np.stack([[logsumexp_rows(row[bounds[s] : bounds[s + 1]]) for s in range(n)] for row in logprobs])
        total = logsumexp_rows(pooled)[:, None]
        # an order where no letter is possible says nothing: uniform, not NaN
        normalised = np.where(np.isfinite(total), pooled - np.where(np.isfinite(total), total, 0.0), -np.log(n))
        return OrderReading(self.first_rotation, tuple(map(tuple, normalised.tolist())))

    def interpret(self, question: Question, logprobs: np.ndarray) -> dict[str, float]:
        return option_probabilities(question.letters, self.order_reading(question, logprobs))


PRIOR_PSEUDO_READINGS = 10.0  # the prior is shrunk towards none by this many readings' worth
PRIOR_ITERATIONS = 20


def estimate_slot_prior(readings: Iterable[OrderReading]) -> SlotPrior:
    """The model's log preference for each display slot, per number of options, from readings over
    several orders: each order's log-probabilities are modelled as option content + slot preference
    (both centred), fitted by alternating means over all readings. An option seen in several slots
    separates the two, so where the answers sit in the exam does not leak into the prior, and a
    reading of one order (nothing to compare) contributes nothing."""
    groups: dict[int, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
    for reading in readings:
        scores = np.array(reading.logprobs)
        k, n = scores.shape
        if k < 2:
            continue
        shown = np.array([rotation(n, r) for r in range(reading.first_order, reading.first_order + k)])
        groups[n].append((scores - scores.mean(axis=1, keepdims=True), shown))
    prior = {}
    for n, rows in groups.items():
        slot = np.zeros(n)
        orders = sum(len(scores) for scores, _ in rows)
        for _ in range(PRIOR_ITERATIONS):
            residual = np.zeros(n)
            for scores, shown in rows:
                content = np.zeros(n)
                np.add.at(content, shown, scores - slot)  # each option's mean over the slots it was shown in
                content /= np.bincount(shown.ravel(), minlength=n).clip(min=1)
                residual += (scores - content[shown]).sum(axis=0)
            slot = residual / (orders + PRIOR_PSEUDO_READINGS)
        prior[n] = slot - slot.mean()
    return prior


def with_slot_prior(output: ReaderOutput, letters: Sequence[str], prior: SlotPrior) -> ReaderOutput:
    """`output` with its probabilities recomputed from its order reading under `prior`."""
    if output.orders is None:
        raise ValueError(f"reader {output.reader!r} kept no order reading to calibrate")
    return replace(output, probabilities=option_probabilities(letters, output.orders, prior))


def rotation_reader_name(rotations: int) -> str:
    return "letter" if rotations == 1 else f"letter-rot{rotations}"


def orders_read(rotations: int, first_rotation: int, n_options: int) -> int:
    """How many option orders a letter reader shows a question of `n_options` options."""
    return max(0, min(rotations, n_options) - first_rotation)


def complete_rotations(
    read: ReaderOutput, rest: ReaderOutput, rotations: int, letters: Sequence[str], prior: SlotPrior | None = None
) -> ReaderOutput:
    """The `rotations`-order reading of a question from a reading over its first orders and one over
    the rest (`first_rotation` = the orders `read` holds): its order readings joined, so the result
    equals reading every order at once (under `prior`, when given)."""
    if read.orders is None or rest.orders is None:
        raise ValueError("completing a reading needs both order readings")
    if rest.orders.first_order != read.orders.first_order + len(read.orders.logprobs):
        raise ValueError(
            f"orders from {rest.orders.first_order} do not follow the "
            f"{len(read.orders.logprobs)} read from {read.orders.first_order}"
        )
    orders = OrderReading(read.orders.first_order, read.orders.logprobs + rest.orders.logprobs)
    return ReaderOutput(
        read.question_id,
        rotation_reader_name(rotations),
        option_probabilities(letters, orders, prior),
        read.evidence + rest.evidence,
        read.prompt_tokens + rest.prompt_tokens,
        orders,
    )
