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

from openbook.answer.budget import Pace, token_shares
from openbook.answer.decide import decide, margin
from openbook.answer.first_pass import FirstPassOutcome
from openbook.answer.plan import Plan, RereadPlan
from openbook.answer.pool import LOCAL, ReadingPool, ReadJob
from openbook.answer.stages import LoadedStage, StageReading, load_stage, open_retrieval, retrieve_contexts
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
    pool: ReadingPool = LOCAL,
) -> RereadOutcome:
    """Re-read the hardest of `results`, in place, while `budget` seconds since `started` last;
    `backend`: the main stage's model where it is loaded already; `first_pass`: its pace and each
    question's cheapest reading; `clock` measures the budget; `pool` reads the re-reads, as many side
    by side as it reads at once, each still costed against the whole run's budget before it goes."""
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
        stage = load_stage(rule.stage, plan.share_prefix, backend, pool)
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
    position, current, out_of_budget = 0, [hardest[0][1]], False
    with meter("re-reading", len(hardest), ("questions",), enabled=plan.progress) as m:
        while position < len(hardest) and not out_of_budget:
            # a wave: the next re-reads that fit, as many as the pool reads side by side (one in a process)
            wave: list[_Reread] = []
            jobs: list[list[ReadJob]] = []
            lanes = [0] * pool.width  # the tokens of each reader of the wave (job i on reader i mod width)
            try:
                while position < len(hardest) and len(wave) < pool.width:
                    cheapest = _loaded(lanes, sum(map(len, jobs)), floor[position], 1)
                    if clock() - started + pace.seconds_for(max(cheapest)) >= budget:  # no reading fits
                        out_of_budget = True
                        break
                    i = hardest[position][1]
                    current = [i]
                    position += 1
                    if i not in own_contexts:  # a batch's retrieval counts in the elapsed time, not in a reading's pace
                        coming = [j for _, j in hardest[position - 1 : position - 1 + RETRIEVAL_BATCH]]
                        found = retrieve_contexts(
                            [results[j].question for j in coming], retrieval, rule.stage.context, stage.count_tokens
                        )
                        own_contexts.update(zip(coming, found))
                    # each of the pool's readers may spend the seconds left over the questions left
                    fair_share = pool.width * (budget - (clock() - started)) / (len(hardest) - position + 1)
                    chosen = _choose(rule, stage, completers, results[i], i, own_contexts[i], pace, fair_share)
                    if chosen is None:
                        continue  # its triage reading saw every order already, and its context is off the question
                    its_jobs = chosen.jobs(stage, results[i].question)
                    loaded = _loaded(lanes, sum(map(len, jobs)), chosen.tokens, len(its_jobs))
                    if clock() - started + pace.seconds_for(max(loaded)) >= budget:
                        report = replace(report, stopped_by_budget=True)
                        continue  # a cheaper question may still fit
                    wave.append(chosen)
                    jobs.append(its_jobs)
                    lanes = loaded
                if not wave:
                    continue
                current = [chosen.index for chosen in wave]
                began = clock()
                read = iter(pool.read([job for each in jobs for job in each]))
                took = clock() - began
                for chosen, its_jobs, share in zip(wave, jobs, token_shares([c.tokens for c in wave])):
                    outputs = [next(read) for _ in its_jobs]
                    results[chosen.index] = chosen.apply(
                        results[chosen.index], outputs, stage, rule, ensemble, priors, took * share
                    )
                    if on_result is not None:
                        on_result(results[chosen.index])
                    seconds[chosen.kind].append(took * share)
                    m.advance(completed=sum(len(s) for s in seconds.values()), questions=1)
                pace = pace.add(took, max(lanes))  # the wave took as long as its busiest reader
            except Exception as error:  # keep what was answered; the caller reports
                named = ", ".join(repr(results[j].question.id) for j in current)  # a wave fails as a whole
                failure, failed = f"re-reading question{'s' if len(current) > 1 else ''} {named}: {error}", error
                break
        if out_of_budget:
            report = replace(report, stopped_by_budget=True)
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


def _loaded(lanes: list[int], first_job: int, tokens: int, jobs: int) -> list[int]:
    """The tokens of each of the pool's readers with a reading of `tokens` added as `jobs` jobs, the
    first of them the wave's job number `first_job` (job i goes to reader i mod width)."""
    added = list(lanes)
    for number in range(jobs):
        added[(first_job + number) % len(lanes)] += tokens // jobs + (tokens % jobs if number == 0 else 0)
    return added


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


@dataclass(frozen=True)
class _Reread:
    """A re-read chosen for a question, and costed: its contexts, or the triage reading's remaining
    option orders without context."""

    index: int  # of the question in the run's results
    kind: RereadKind
    coverage: float | None  # of the question by its own context (None: no triage reading to complete)
    tokens: int
    contexts: list[RetrievedContext]  # its own retrieved contexts, read where `kind` is "context"
    triage: ReaderOutput | None = None
    completer: PromptReaders | None = None  # the remaining orders, where `kind` is "orders"

    def jobs(self, stage: LoadedStage, question: Question) -> list[ReadJob]:
        if self.completer is not None:
            return [ReadJob(self.completer, [question], [NO_CONTEXT.context])]
        return StageReading(stage, [question], [self.contexts]).jobs()

    def apply(
        self,
        result: QuestionResult,
        read: Sequence[list[list[ReaderOutput]]],
        stage: LoadedStage,
        rule: RereadPlan,
        ensemble: Ensemble | None,
        priors: dict[str, SlotPrior],
        seconds: float,
    ) -> QuestionResult:
        """`result` re-decided with what its jobs read (`read`), `seconds` added to its time."""
        if self.completer is not None:
            assert self.triage is not None
            (((rest,),),) = read  # one job, one question, one output
            outputs, deciding = _join_remaining_orders(rest, result, self.triage, priors.get(self.triage.reader))
            every_context = result.contexts
        else:
            (more,) = StageReading(stage, [result.question], [self.contexts]).outputs(read)
            outputs = [*result.outputs, *more]
            deciding = more if rule.decided_by == "main stage" else outputs
            every_context = [*result.contexts, *self.contexts]
        return replace(
            result,
            prediction=decide(result.question, deciding, every_context, ensemble),
            outputs=outputs,
            contexts=every_context,
            reread=Reread(self.kind, self.coverage),
            seconds=result.seconds + seconds,
        )


def _choose(
    rule: RereadPlan,
    stage: LoadedStage,
    completers: dict[tuple[int, int], PromptReaders],
    result: QuestionResult,
    index: int,
    contexts: list[RetrievedContext],
    pace: Pace,
    fair_share: float,
) -> _Reread | None:
    """How `result` is re-read, and its cost: its own context where that covers it (or without a
    triage reading to complete), else the remaining option orders that fit `fair_share`; None where
    no order is left to read and its context is off the question."""
    triage = _triage_reading(rule, result)
    coverage = (
        None
        if triage is None
        else max(question_coverage(result.question, packed_texts(c.hits, c.context)) for c in contexts)
    )
    threshold = rule.coverage_threshold
    if coverage is None or threshold is None or coverage >= threshold:
        return _Reread(index, "context", coverage, stage.tokens(result.question, contexts), contexts)
    if triage is None or not _orders_left(triage, result.question):
        return None
    assert stage.backend is not None
    completer, tokens = orders_that_fit(
        completers, stage.backend, stage.share_prefix, triage, result.question, pace, fair_share
    )
    return _Reread(index, "orders", coverage, tokens, contexts, triage, completer)


def _join_remaining_orders(
    rest: ReaderOutput, result: QuestionResult, triage: ReaderOutput, prior: SlotPrior | None
) -> tuple[list[ReaderOutput], list[ReaderOutput]]:
    """The question's outputs with the joined reading added (named `letter-rotK@none` after the K
    orders it now holds, apart from a main reader of K rotations, which reads context), and the
    outputs that decide it: the joined reading in place of the triage letter reading it contains.
    `rest`: the remaining orders' reading; `prior`: the triage reading's slot prior, which the
    orders read now share (same model and prompt, no context)."""
    question = result.question
    assert rest.orders is not None
    joined = complete_rotations(triage, rest, _orders_of(triage) + len(rest.orders.logprobs), question.letters, prior)
    joined = replace(joined, reader=f"{joined.reader}@{NO_CONTEXT.retrieval}")
    return [*result.outputs, joined], [o for o in result.outputs if o is not triage] + [joined]
