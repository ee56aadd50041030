"""The first pass: every question read once, in exam order, as the budget plan allows.

In a budgeted cascade the pace is measured first, on one reading of the first question in one option
order (its output is not kept), and the first pass planned from it (`plan_first_pass`): each
question's option orders, within the first pass's share of the budget. The plan is made again every
`REPLAN_EVERY` questions at the pace measured so far, so a machine slower or faster than its start-up
reading keeps the first pass within its share.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from openbook.answer.budget import UNMEASURED, FirstPassPlan, Pace, plan_first_pass, token_shares
from openbook.answer.pool import busiest
from openbook.answer.stages import LoadedStage, read_stage
from openbook.progress import meter, notice
from openbook.records import Prediction, Question, QuestionResult, ReaderOutput, RetrievedContext

REPLAN_EVERY = 8  # questions

Decide = Callable[[Question, list[ReaderOutput], list[RetrievedContext]], Prediction]


@dataclass(frozen=True)
class FirstPassOutcome:
    results: list[QuestionResult]
    pace: Pace
    plan: FirstPassPlan | None  # as planned at the start; None: no budget, or nothing to read
    cheapest_tokens: dict[str, int]  # per question id (budgeted): its reading in one order, the least any costs
    failure: str | None = None
    error: Exception | None = None


def read_first_pass(
    stage: LoadedStage,
    questions: Sequence[Question],
    contexts: Sequence[list[RetrievedContext]],
    decide: Decide,
    *,
    share: float,
    budget_left: Callable[[], float],
    batch: int,
    on_result: Callable[[QuestionResult], None] | None,
    progress: bool,
    clock: Callable[[], float],
    pace: Pace = UNMEASURED,
) -> FirstPassOutcome:
    """Read every question of `questions` with its `contexts`; `budget_left()`: the run's seconds
    left (infinite: no budget, and every question is read in the stage's orders, uncosted); `pace`:
    measured before (by earlier runs of a session), which saves the start-up measurement. A failing
    question stops the pass; the answers before it are kept (a batch that fails is read again a
    question at a time, so the question is named and the others of the batch answered)."""
    budgeted = bool(questions) and math.isfinite(budget_left())
    varies = budgeted and stage.plan.orders_per_question
    variants = [stage.with_orders(k) for k in range(1, stage.plan.rotations + 1)] if varies else [stage]
    costs = [[v.tokens(q, c) for v in variants] for q, c in zip(questions, contexts)] if budgeted else []
    cheapest = {q.id: cost[0] for q, cost in zip(questions, costs)}
    if budgeted and not pace.measured:
        pace = _measure_pace(variants[0], questions[0], contexts[0], costs[0][0], clock)
    started = clock()
    allowance = share * budget_left()
    level = [len(variants)] * len(questions)  # index + 1 into `variants`
    planned: FirstPassPlan | None = None
    replan_at = 0
    results: list[QuestionResult] = []
    failure, error = None, None
    description = "answering" if stage.plan.name == "answer" else stage.plan.name
    with meter(description, len(questions), ("questions",), enabled=progress) as m:
        for start in range(0, len(questions), max(1, batch)):
            if budgeted and start >= replan_at:
                width = stage.pool.width  # questions read side by side, each at the pace of one reader
                again = plan_first_pass(
                    costs[start:], pace.side_by_side(width), allowance - (clock() - started), budget_left()
                )
                level[start:] = list(again.orders)
                if planned is None:
                    planned = again
                    notice(again.describe(), progress or not again.covers)  # a budget it cannot keep is always said
                replan_at = start + REPLAN_EVERY
            chunk = list(range(start, min(start + max(1, batch), len(questions))))
            answered: dict[int, QuestionResult] = {}
            parts = [chunk]
            while parts and failure is None:
                part = parts.pop(0)
                try:
                    for k in sorted({level[i] for i in part}):
                        picked = [i for i in part if level[i] == k and i not in answered]
                        began = clock()
                        read = read_stage(
                            variants[k - 1], [questions[i] for i in picked], [contexts[i] for i in picked]
                        )
                        took = clock() - began
                        if budgeted:
                            pace = pace.add(took, busiest([costs[i][k - 1] for i in picked], stage.pool.width))
                        shares = token_shares([costs[i][k - 1] for i in picked] if budgeted else [1] * len(picked))
                        for i, outputs, share_of_batch in zip(picked, read, shares):
                            prediction = decide(questions[i], outputs, contexts[i])
                            answered[i] = QuestionResult(
                                questions[i], prediction, outputs, contexts[i], seconds=took * share_of_batch
                            )
                except Exception as caught:  # keep what was answered; the caller reports
                    if len(part) > 1:  # one by one: the others answered, the question that fails named
                        parts = [[i] for i in part if i not in answered]
                    else:
                        failure, error = f"question {questions[part[0]].id!r}: {caught}", caught
            for i in sorted(answered):
                results.append(answered[i])
                if on_result is not None:
                    on_result(answered[i])
            if failure is not None:
                break
            m.advance(completed=len(results), questions=len(chunk))
    return FirstPassOutcome(results, pace, planned, cheapest, failure, error)


def _measure_pace(
    stage: LoadedStage, question: Question, contexts: list[RetrievedContext], tokens: int, clock: Callable[[], float]
) -> Pace:
    """Seconds per token on one reading of `question` (not kept); unmeasured where it fails (the pass
    then meets the failure on the question itself)."""
    began = clock()
    try:
        read_stage(stage, [question], [contexts])
    except Exception:
        return Pace()
    return Pace().add(clock() - began, tokens)
