"""The budget in tokens: every reading is costed before it runs.

A reading's cost is the prompt tokens the model will evaluate for it (`LoadedStage.tokens`: the
shared prefix once and each continuation), counted with the model's own tokenizer; its time is that
cost at the machine's pace (`Pace`: wall-clock seconds per evaluated token), measured on a reading at
start-up and over every reading since. With both, a run knows before it reads a question whether the
reading fits what is left of its budget.

Readings made side by side (a pool of actors, `answer --ray`) are costed the same way: the pace is
one reader's, and readings made at once take as long as the busiest reader's share of them.

The first pass must answer every question, so it is planned as a whole (`plan_first_pass`): every
question gets one option order, the cheapest reading there is; then, while the first pass still fits
its share of the budget, questions get a second order, then a third, cheapest questions first. Long
questions (the LLM Science Exam's options run to ~900 characters) therefore keep fewer orders and
leave the rest of the budget for reading evidence, where a 3-order pass over them would spend the
whole budget closed-book. Where even one order for every question cannot fit, the plan says so at
the start (`FirstPassPlan.covers`) and reads that, the cheapest answer there is, with nothing re-read.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

FIRST_PASS_SHARE = 0.6  # of the budget: the rest is for the second readings (evidence, more orders)


@dataclass(frozen=True)
class Pace:
    """Wall-clock seconds per prompt token evaluated, over the readings measured so far."""

    seconds: float = 0.0
    tokens: int = 0

    def add(self, seconds: float, tokens: int) -> Pace:
        return Pace(self.seconds + seconds, self.tokens + tokens)

    @property
    def measured(self) -> bool:
        return self.tokens > 0

    @property
    def per_token(self) -> float:
        return self.seconds / self.tokens if self.tokens else 0.0

    def seconds_for(self, tokens: int) -> float:
        return tokens * self.per_token

    def side_by_side(self, width: int) -> Pace:
        """The pace of `width` readers reading at once, each at this one: what a whole pass takes per token."""
        return Pace(self.seconds / width, self.tokens)


UNMEASURED = Pace()


def token_shares(tokens: Sequence[int]) -> list[float]:
    """Each reading's share of the time of the readings made together: its share of their prompt tokens."""
    total = sum(tokens)
    return [t / total if total else 1 / len(tokens) for t in tokens]


@dataclass(frozen=True)
class FirstPassPlan:
    """How many option orders each question of the first pass is read in, and what that costs."""

    orders: tuple[int, ...]  # per question, in exam order
    tokens: int
    seconds: float  # at the pace measured when planned
    allowance: float  # seconds the first pass may take (its share of the budget left)
    covers: bool  # one order for every question fits the whole budget left

    def counts(self) -> dict[int, int]:
        """Questions per number of orders."""
        return {k: self.orders.count(k) for k in sorted(set(self.orders))}

    def describe(self) -> str:
        spread = ", ".join(f"{n} in {k} order{'s' if k > 1 else ''}" for k, n in self.counts().items())
        text = f"first pass: {spread} ({self.tokens:,} prompt tokens, ~{self.seconds:,.0f} s"
        if math.isinf(self.allowance):
            return text + ")"
        text += f" of {self.allowance:,.0f} s allowed)"
        if not self.covers:
            text += (
                "; the budget cannot cover even one option order per question: every question is read once that way,"
                " nothing is re-read, and the run will take longer than its budget"
            )
        return text


def plan_first_pass(costs: Sequence[Sequence[int]], pace: Pace, allowance: float, budget_left: float) -> FirstPassPlan:
    """`costs[i][k - 1]`: the tokens of reading question i in k option orders. Every question gets
    one order; then, while the total fits `allowance` seconds at `pace`, more orders are added a
    level at a time (every question its second order before any its third), cheapest first.
    `budget_left`: the run's, which one order per question must fit for the plan to cover it."""
    orders = [1] * len(costs)
    tokens = sum(cost[0] for cost in costs)
    most = max((len(cost) for cost in costs), default=1)
    for level in range(2, most + 1):
        upgrades = sorted((cost[level - 1] - cost[level - 2], i) for i, cost in enumerate(costs) if len(cost) >= level)
        for extra, i in upgrades:
            if orders[i] != level - 1 or pace.seconds_for(tokens + extra) > allowance:
                continue
            orders[i] = level
            tokens += extra
    return FirstPassPlan(
        tuple(orders),
        tokens,
        pace.seconds_for(tokens),
        allowance,
        covers=pace.seconds_for(sum(cost[0] for cost in costs)) <= budget_left,
    )
