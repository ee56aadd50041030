"""Runs a plan over an exam, question by question: retrieval batched across questions, then reading,
every prompt reader of a question served by one evaluation of its shared prefix; then, for a cascade,
the re-reading of the hardest questions while the budget lasts."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from openbook.answer.budget import UNMEASURED, Pace
from openbook.answer.cascade import reread
from openbook.answer.decide import apply_letter_prior, decide, first_pass_ensemble
from openbook.answer.first_pass import read_first_pass
from openbook.answer.plan import Plan
from openbook.answer.pool import ReadingPool, open_pool
from openbook.answer.stages import LoadedStage, load_stage, open_retrieval, retrieve_contexts
from openbook.backends import Backend
from openbook.ensemble import Ensemble
from openbook.readers import Reader
from openbook.records import FRESH_RUN, CascadeReport, EarlierRun, Question, QuestionResult, Run, RunSeconds


def execute(
    plan: Plan,
    questions: Sequence[Question],
    *,
    earlier: EarlierRun = FRESH_RUN,
    on_result: Callable[[QuestionResult], None] | None = None,
    backend: Backend | None = None,
    readers: Sequence[Reader] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    pace: Pace = UNMEASURED,
    pool: ReadingPool | None = None,
) -> Run:
    """Answer `questions` (the plan's first `limit`, less those `earlier` runs answered); `on_result`
    sees each answer as soon as it is made, and again if a re-read or the letter prior changes it.
    `backend`: the main model, loaded already; `readers`: the readers of a one-stage plan, built
    already (benchmarks); `clock`: what the budget and timings are measured with; `pace`: the
    machine's, measured by earlier runs (a session answering question after question), else measured
    at start-up; `pool`: where the readings are made (None: the plan's cluster, else this process).
    `earlier.first_pass` answers join this run's first pass, not read again; a
    cascade's budget covers every question of the run, the earlier runs' time counted as spent.

    A question that fails stops the run: the answers made before it are in the returned `Run`, with
    the failure (and the exception) named there."""
    started = clock()
    if plan.cluster is not None and (backend is not None or readers is not None):
        raise ValueError("a plan read on a cluster loads its models there, not passed in")
    if pool is not None:
        return _execute(plan, questions, earlier, on_result, backend, readers, clock, pace, pool, started)
    models = tuple(dict.fromkeys(stage.model for stage in plan.stages() if stage.model is not None))
    opened = open_pool(plan.cluster, models)
    try:
        return _execute(plan, questions, earlier, on_result, backend, readers, clock, pace, opened, started)
    finally:
        opened.close()


def _execute(
    plan: Plan,
    questions: Sequence[Question],
    earlier: EarlierRun,
    on_result: Callable[[QuestionResult], None] | None,
    backend: Backend | None,
    readers: Sequence[Reader] | None,
    clock: Callable[[], float],
    pace: Pace,
    pool: ReadingPool,
    started: float,
) -> Run:
    cascade = plan.reread is not None
    if cascade and readers is not None:
        raise ValueError("readers passed in serve a plan of one stage")
    ensemble = Ensemble.load(plan.ensemble) if plan.ensemble is not None else None
    if plan.limit is not None:
        questions = questions[: plan.limit]
    answered_before = sum(q.id in earlier.answered for q in questions)
    taken_up = {result.question.id for result in earlier.first_pass}
    questions = [q for q in questions if q.id not in earlier.answered and q.id not in taken_up]
    first = plan.first
    # a backend passed in is the main model's: the first pass reads with it where the plan shares it
    first_backend = backend if plan.reread is None or plan.reread.shares_model else None
    triaging = cascade and bool(questions)  # a resumed cascade may have triaged every question already
    if readers is not None:
        stage = LoadedStage(first, backend, tuple(readers))
    elif triaging or not cascade:
        stage = load_stage(first, plan.share_prefix, first_backend, pool)
    else:  # nothing for the first pass to read: its model is not loaded
        stage = LoadedStage(first, first_backend, (), pool=pool)
    loaded = clock()
    contexts_per_question = (
        retrieve_contexts(questions, open_retrieval(first.context), first.context, stage.count_tokens)
        if questions
        else []
    )
    retrieved = clock()
    seconds_before = stage.model_seconds
    runs_questions = len(questions) + len(earlier.first_pass) + answered_before
    budget = plan.reread.budget.total(runs_questions) if plan.reread is not None else math.inf

    def budget_left() -> float:
        return budget - (clock() - started + earlier.seconds)

    passed = read_first_pass(
        stage,
        questions,
        contexts_per_question,
        lambda question, outputs, contexts: decide(
            question, outputs, contexts, first_pass_ensemble(ensemble, outputs, cascade)
        ),
        share=plan.reread.first_pass_share if plan.reread is not None else 1.0,
        budget_left=budget_left,
        batch=plan.question_batch * pool.width,  # a pool reads its width of questions side by side
        on_result=on_result,
        progress=plan.progress,
        clock=clock,
        pace=pace,
    )
    results: list[QuestionResult] = [*earlier.first_pass, *passed.results]
    failure, error = passed.failure, passed.error
    spent = stage.model_seconds - seconds_before
    priors = apply_letter_prior(results, ensemble, cascade, on_result, earlier.readings) if plan.letter_prior else {}
    model_paths: dict[str, str | None] = {first.name: stage.model_path if stage.readers else None}
    report = CascadeReport(candidates=0) if cascade else None  # as it stands when the first pass fails
    if plan.reread is not None and failure is None:
        shared = stage.backend if plan.reread.shares_model else backend
        outcome = reread(
            results, plan, ensemble, started - earlier.seconds, budget, shared, on_result, priors, passed, clock, pool
        )
        report = replace(outcome.report, earlier_runs_seconds=earlier.seconds)
        model_paths[plan.reread.stage.name] = outcome.report.model_path
        failure, error = outcome.failure, outcome.error
        spent += outcome.model_seconds
    finished = clock()
    seconds = RunSeconds(
        total=finished - started,
        load_model=loaded - started,
        retrieve_and_pack=retrieved - loaded,
        read=finished - retrieved,
        model=spent,
        earlier_runs=earlier.seconds,
        per_question=(earlier.seconds + finished - loaded) / max(len(results) + answered_before, 1),
        overhead_fraction=(finished - loaded - spent) / max(finished - loaded, 1e-9),
    )
    names = tuple(dict.fromkeys(output.reader for result in results for output in result.outputs))
    return Run(results, seconds, model_paths, names, report, failure, error, cluster=pool.record())
