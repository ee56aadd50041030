"""The cascade's second stage (3rd and 5th place of the LLM Science Exam): after the first pass has
answered every question, the hardest (smallest top-1/top-2 margin) are read again while the time
budget lasts.

A question whose own retrieved context covers it (`RereadPlan.coverage_threshold`) is read with it by
the main readers; another is read in the letter reader's remaining option orders without context
(`OrderCompletion`), which costs a fifth to under half as much — all of them where they fit the
question's fair share of the budget left, else as many as fit, one at least (`orders_that_fit`). Every re-read is costed before it
runs, in the prompt tokens it will evaluate at the pace measured so far (`budget.Pace`), and goes
ahead only where that fits the budget left; one that does not is passed over for cheaper ones, and
the stage stops once not even the cheapest reading of any question left could fit. Contexts are
retrieved a batch at a time, ahead of the questions that read them. Nothing is loaded or retrieved
once the budget is spent.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from openbook.answer.budget import Pace
from openbook.answer.decide import decide, margin
from openbook.answer.first_pass import FirstPassOutcome
from openbook.answer.plan import Plan, RereadPlan
from openbook.answer.stages import load_stage, open_retrieval, read_stage, retrieve_contexts
from openbook.backends import Backend
from openbook.ensemble import Ensemble
from openbook.progress import meter
from openbook.readers import LetterReader, PromptReaders
from openbook.readers.letter import SlotPrior, complete_rotations, orders_read
from openbook.records import (
    LETTERS,
    NO_CONTEXT,
    TRIAGE_SUFFIX,
    CascadeReport,
    Question,
    QuestionResult,
    ReaderOutput,
    Reread,
    RereadKind,
    RetrievedContext,
)
from openbook.retrieve.context import packed_texts, question_coverage

RETRIEVAL_BATCH = 16  # contexts the second stage retrieves at a time (batched queries are cheaper)


@dataclass(frozen=True)
class RereadOutcome:
    report: CascadeReport
    model_seconds: float
    failure: str | None = None  # why it stopped early (the answers so far stand)
    error: Exception | None = None


def mean_pace(seconds: Sequence[float]) -> float:
    return sum(seconds) / len(seconds) if seconds else 0.0


def reread(
    results: list[QuestionResult],
    plan: Plan,
    ensemble: Ensemble | None,
    started: float,
    budget: float,
    backend: Backend | None,
    on_result: Callable[[QuestionResult], None] | None,
    priors: dict[str, SlotPrior],
    first_pass: FirstPassOutcome,
    clock: Callable[[], float] = time.perf_counter,
) -> RereadOutcome:
    """Re-read the hardest of `results`, in place, while `budget` seconds since `started` last;
    `backend`: the main stage's model where it is loaded already; `first_pass`: its pace and each
    question's cheapest reading; `clock` measures the budget."""
    assert plan.reread is not None
    rule = plan.reread
    hardest = sorted((margin(r.prediction), i) for i, r in enumerate(results) if margin(r.prediction) < rule.margin)
    report = _first_pass_report(
        CascadeReport(candidates=len(hardest), budget_seconds=None if math.isinf(budget) else budget), first_pass
    )
    if not hardest:
        return RereadOutcome(report, 0.0)
    pace = first_pass.pace if rule.shares_model else Pace()  # another model is measured on its own readings
    # the least any reading of the questions from each position on can cost: below it, nothing fits
    floor = [first_pass.cheapest_tokens.get(results[i].question.id, 0) for _, i in hardest]
    for position in range(len(floor) - 2, -1, -1):
        floor[position] = min(floor[position], floor[position + 1])
    if clock() - started + pace.seconds_for(floor[0]) >= budget:
        return RereadOutcome(replace(report, stopped_by_budget=True), 0.0)
    try:
        stage = load_stage(rule.stage, plan.share_prefix, backend)
    except Exception as error:  # the first-pass answers stand and are written
        return RereadOutcome(report, 0.0, f"loading the main stage: {error}", error)
    seconds_before = stage.model_seconds
    report = replace(
        report,
        readers=tuple(name for reader in stage.readers for name in reader.names),
        model_path=stage.model_path,
        context_coverage=rule.coverage_threshold,
    )
    completers: dict[tuple[int, int], PromptReaders] = {}  # by the orders read before and the orders to read
    retrieval = open_retrieval(rule.stage.context)
    own_contexts: dict[int, list[RetrievedContext]] = {}
    seconds: dict[RereadKind, list[float]] = {"context": [], "orders": []}
    failure, failed = None, None
    with meter("re-reading", len(hardest), ("questions",), enabled=plan.progress) as m:
        for position, (_, i) in enumerate(hardest):
            if clock() - started + pace.seconds_for(floor[position]) >= budget:  # no reading fits any more
                report = replace(report, stopped_by_budget=True)
                break
            result = results[i]
            try:
                if i not in own_contexts:  # a batch's retrieval counts in the elapsed time, not in one question's pace
                    coming = [j for _, j in hardest[position : position + RETRIEVAL_BATCH]]
                    found = retrieve_contexts(
                        [results[j].question for j in coming], retrieval, rule.stage.context, stage.count_tokens
                    )
                    own_contexts.update(zip(coming, found))
                triage = _triage_reading(rule, result)
                coverage = (
                    None
                    if triage is None
                    else max(
                        question_coverage(result.question, packed_texts(c.hits, c.context)) for c in own_contexts[i]
                    )
                )
                threshold = rule.coverage_threshold
                kind: RereadKind = (
                    "orders" if coverage is not None and threshold is not None and coverage < threshold else "context"
                )
                if kind == "orders" and (triage is None or not _orders_left(triage, result.question)):
                    continue  # its triage reading saw every order already, and its context is off the question
                completer = None
                if kind == "orders":
                    assert triage is not None and stage.backend is not None
                    fair_share = (budget - (clock() - started)) / (len(hardest) - position)
                    completer, tokens = orders_that_fit(
                        completers, stage.backend, plan.share_prefix, triage, result.question, pace, fair_share
                    )
                else:
                    tokens = stage.tokens(result.question, own_contexts[i])
                if clock() - started + pace.seconds_for(tokens) >= budget:
                    report = replace(report, stopped_by_budget=True)
                    continue  # a cheaper question may still fit
                began = clock()
                if completer is not None:
                    assert triage is not None
                    outputs, deciding = _read_remaining_orders(completer, result, triage, priors.get(triage.reader))
                    every_context = result.contexts
                else:
                    (more,) = read_stage(stage, [result.question], [own_contexts[i]])
                    outputs = [*result.outputs, *more]
                    deciding = more if rule.decided_by == "main stage" else outputs
                    every_context = [*result.contexts, *own_contexts[i]]
                prediction = decide(result.question, deciding, every_context, ensemble)
            except Exception as error:  # keep what was answered; the caller reports
                failure, failed = f"re-reading question {result.question.id!r}: {error}", error
                break
            took = clock() - began
            results[i] = replace(
                result,
                prediction=prediction,
                outputs=outputs,
                contexts=every_context,
                reread=Reread(kind, coverage),
                seconds=result.seconds + took,
            )
            if on_result is not None:
                on_result(results[i])
            pace = pace.add(took, tokens)
            seconds[kind].append(took)
            m.advance(completed=sum(len(s) for s in seconds.values()), questions=1)
    report = replace(
        report,
        reread=sum(len(s) for s in seconds.values()),
        read_without_context=len(seconds["orders"]),
        seconds_per_reread=mean_pace([t for kind in seconds.values() for t in kind]),
        seconds_per_kind={kind: mean_pace(taken) for kind, taken in seconds.items() if taken or kind == "context"},
        paced_tokens=pace.tokens if pace.measured else report.paced_tokens,
        paced_seconds=pace.seconds if pace.measured else report.paced_seconds,
    )
    return RereadOutcome(report, stage.model_seconds - seconds_before, failure, failed)


def _first_pass_report(report: CascadeReport, first_pass: FirstPassOutcome) -> CascadeReport:
    planned = first_pass.plan
    if planned is None:
        return report
    return replace(
        report,
        first_pass=planned.describe(),
        first_pass_orders={str(k): n for k, n in planned.counts().items()},
        budget_covers_first_pass=planned.covers,
        paced_tokens=first_pass.pace.tokens,
        paced_seconds=first_pass.pace.seconds,
    )


def orders_that_fit(
    completers: dict[tuple[int, int], PromptReaders],
    backend: Backend,
    share_prefix: bool,
    triage: ReaderOutput,
    question: Question,
    pace: Pace,
    fair_share: float,
) -> tuple[PromptReaders, int]:
    """The letter reader over the option orders the triage reading did not read — all of them where
    they fit `fair_share` (the budget left over the questions left), else as many as fit, one at
    least — and its cost in tokens. Short questions complete all five orders in one re-read; a long
    question, whose every order costs as much as a short question's prompt, gets one more order."""
    before = _orders_of(triage)
    more = orders_read(len(LETTERS), before, len(question.options))
    while True:
        key = (before, more)
        if key not in completers:
            reader = LetterReader(backend, rotations=before + more, first_rotation=before)
            completers[key] = PromptReaders(backend, [reader], share_prefix)
        tokens = completers[key].tokens(question, NO_CONTEXT.context)
        if more == 1 or pace.seconds_for(tokens) <= fair_share:
            return completers[key], tokens
        more -= 1


def _triage_reading(rule: RereadPlan, result: QuestionResult) -> ReaderOutput | None:
    """The triage letter reading the order completion would complete; None without one or without
    its order reading (a resumed run's log may lack them)."""
    if rule.completion is None:
        return None
    return next(
        (
            o
            for o in result.outputs
            if o.reader.endswith(TRIAGE_SUFFIX) and o.orders is not None and o.orders.first_order == 0
        ),
        None,
    )


def _orders_of(reading: ReaderOutput) -> int:
    assert reading.orders is not None
    return len(reading.orders.logprobs)


def _orders_left(triage: ReaderOutput, question: Question) -> bool:
    return orders_read(len(LETTERS), _orders_of(triage), len(question.options)) > 0


def _read_remaining_orders(
    completer: PromptReaders, result: QuestionResult, triage: ReaderOutput, prior: SlotPrior | None
) -> tuple[list[ReaderOutput], list[ReaderOutput]]:
    """The question's outputs with the joined reading added (named `letter-rotK@none` after the K
    orders it now holds, apart from a main reader of K rotations, which reads context), and the
    outputs that decide it: the joined reading in place of the triage letter reading it contains.
    `prior`: the triage reading's slot prior, which the orders read now share (same model and
    prompt, no context)."""
    question = result.question
    ((rest,),) = completer.read([question], [NO_CONTEXT.context])
    assert rest.orders is not None
    joined = complete_rotations(triage, rest, _orders_of(triage) + len(rest.orders.logprobs), question.letters, prior)
    joined = replace(joined, reader=f"{joined.reader}@{NO_CONTEXT.retrieval}")
    return [*result.outputs, joined], [o for o in result.outputs if o is not triage] + [joined]
