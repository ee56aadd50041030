"""The cascade's second stage (3rd and 5th place of the LLM Science Exam): after the first pass has
answered every question, the hardest (smallest top-1/top-2 margin) are read again while the time
budget lasts.

A question whose own retrieved context covers it (`RereadPlan.coverage_threshold`) is read with it by
the main readers; another is read in the letter reader's remaining option orders without context
(`OrderCompletion`), which costs a fifth to under half as much. Each kind of re-read keeps its own
pace, and a question goes ahead while its kind's pace fits the budget left; while the cheaper kind
still fits, contexts go on being retrieved (a batch at a time) to route the rest. Nothing is loaded or
retrieved once the budget is spent.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from openbook.answer.decide import decide, margin
from openbook.answer.plan import Plan, RereadPlan
from openbook.answer.stages import LoadedStage, load_stage, open_retrieval, read_stage, retrieve_contexts
from openbook.backends import Backend
from openbook.ensemble import Ensemble
from openbook.progress import meter
from openbook.readers import LetterReader, PromptReaders
from openbook.readers.letter import SlotPrior, complete_rotations, orders_read
from openbook.records import (
    LETTERS,
    NO_CONTEXT,
    CascadeReport,
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
    clock: Callable[[], float] = time.perf_counter,
) -> RereadOutcome:
    """Re-read the hardest of `results`, in place, while `budget` seconds since `started` last;
    `backend`: the main stage's model where it is loaded already; `clock` measures the budget."""
    assert plan.reread is not None
    rule = plan.reread
    hardest = sorted((margin(r.prediction), i) for i, r in enumerate(results) if margin(r.prediction) < rule.margin)
    budget = budget if hardest else 0.0
    report = CascadeReport(candidates=len(hardest), budget_seconds=None if math.isinf(budget) else budget)
    if not hardest:
        return RereadOutcome(report, 0.0)
    if clock() - started >= budget:
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
    completer = _order_completer(rule, stage, plan.share_prefix)
    retrieval = open_retrieval(rule.stage.context)
    own_contexts: dict[int, list[RetrievedContext]] = {}
    pace: dict[RereadKind, list[float]] = {"context": [], "orders": []} if completer is not None else {"context": []}
    counts = {"context": 0, "orders": 0}
    failure, failed = None, None
    with meter("re-reading", len(hardest), ("questions",), enabled=plan.progress) as m:
        for position, (_, i) in enumerate(hardest):
            elapsed = clock() - started
            if elapsed + min(mean_pace(seconds) for seconds in pace.values()) >= budget:  # no kind fits any more
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
                if kind == "orders" and not _orders_left(rule, result):
                    continue  # its triage reading saw every order already, and its context is off the question
                if clock() - started + mean_pace(pace[kind]) >= budget:
                    report = replace(report, stopped_by_budget=True)
                    continue  # a cheaper kind may still fit
                began = clock()
                if kind == "orders":
                    assert completer is not None and triage is not None
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
            results[i] = replace(
                result, prediction=prediction, outputs=outputs, contexts=every_context, reread=Reread(kind, coverage)
            )
            if on_result is not None:
                on_result(results[i])
            pace[kind].append(clock() - began)
            counts[kind] += 1
            m.advance(completed=sum(counts.values()), questions=1)
    report = replace(
        report,
        reread=sum(counts.values()),
        read_without_context=counts["orders"],
        seconds_per_reread=mean_pace([t for seconds in pace.values() for t in seconds]),
        seconds_per_kind={kind: mean_pace(seconds) for kind, seconds in pace.items()},
    )
    return RereadOutcome(report, stage.model_seconds - seconds_before, failure, failed)


def _order_completer(rule: RereadPlan, stage: LoadedStage, share_prefix: bool) -> PromptReaders | None:
    """The letter reader over the orders the triage pass did not read, on the main stage's model."""
    if rule.completion is None or stage.backend is None:
        return None
    reader = LetterReader(stage.backend, rotations=len(LETTERS), first_rotation=rule.completion.orders_read)
    return PromptReaders(stage.backend, [reader], share_prefix)


def _triage_reading(rule: RereadPlan, result: QuestionResult) -> ReaderOutput | None:
    """The triage reading the order completion would complete; None without one or without its order
    reading (a resumed run's log may lack them)."""
    if rule.completion is None:
        return None
    wanted = rule.completion.triage_output
    return next((o for o in result.outputs if o.reader == wanted and o.orders is not None), None)


def _orders_left(rule: RereadPlan, result: QuestionResult) -> bool:
    assert rule.completion is not None
    return orders_read(len(LETTERS), rule.completion.orders_read, len(result.question.options)) > 0


def _read_remaining_orders(
    completer: PromptReaders, result: QuestionResult, triage: ReaderOutput, prior: SlotPrior | None
) -> tuple[list[ReaderOutput], list[ReaderOutput]]:
    """The question's outputs with the full-order reading added (named `letter-rot5@none`, apart from
    a main reader with 5 rotations, which reads context), and the outputs that decide it: the
    full-order reading in place of the triage letter reading it contains. `prior`: the triage
    reading's slot prior, which the orders read now share (same model and prompt, no context)."""
    question = result.question
    ((rest,),) = completer.read([question], [NO_CONTEXT.context])
    full = complete_rotations(triage, rest, len(LETTERS), question.letters, prior)
    full = replace(full, reader=f"{full.reader}@{NO_CONTEXT.retrieval}")
    return [*result.outputs, full], [o for o in result.outputs if o is not triage] + [full]
