"""The plan a run follows, decided once from the options.

`make_plan` checks the options and turns them into a frozen `Plan`: the first stage (every question),
and, for a cascade, the re-reading stage with its rule (which questions, how each is read, who decides)
and its time budget. The executor follows the plan and never looks at the options again; `--dry-run`
prints it (`describe`), run.json records it (`as_dict`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Literal

from openbook.answer.budget import FIRST_PASS_SHARE
from openbook.answer.options import (
    AUTO_TRIAGE,
    DEFAULT_BUDGET_PER_QUESTION,
    NO_TRIAGE,
    AnswerOptions,
)
from openbook.config import check_bounds
from openbook.errors import ConfigError
from openbook.index.dense import check_engine
from openbook.records import LETTERS, TRIAGE_SUFFIX
from openbook.retrieve import AUTO, Retrieval, RetrievalSpec

READER_KINDS = ("letter", "yesno", "encoder")
EVIDENCE_KINDS = ("passages", "sentences")
PROMPT_READERS = ("letter", "yesno")  # read by a language model, sharing one prefix per question
TRANSFORMERS_BACKENDS = ("transformers", "transformers-layered")

Decider = Literal["mean of both stages", "main stage", "ensemble"]


@dataclass(frozen=True)
class ModelPlan:
    """The language model a stage's prompt readers share."""

    name: str
    backend: str
    n_ctx: int
    threads: int | None
    adapter: str | None = None
    packed: bool = False


@dataclass(frozen=True)
class ClusterPlan:
    """The Ray cluster a run reads on: its address ("local": one started for the run), the reading
    actors (None: one per node) and each one's CPU threads (None: a node's CPUs)."""

    address: str
    actors: int | None
    threads: int | None


@dataclass(frozen=True)
class EncoderPlan:
    model: str
    tokens: int  # read per option
    threads: int | None


@dataclass(frozen=True)
class ContextPlan:
    """What a stage reads besides the question: the passages its pipelines retrieve, packed."""

    index: Path
    retrieval: tuple[str, ...]  # pipeline labels as resolved on this index; one context each
    passages: int  # retrieved per question and pipeline
    candidates: int  # per retriever before fusion or reranking
    dense_engine: str
    tokens: int  # budget of each packed context, in the reading model's tokens
    evidence: str = "passages"  # whole passages, or the sentences that bear on the question


@dataclass(frozen=True)
class StagePlan:
    """One reading of a question: its readers, the model(s) they need and the context they read."""

    name: str  # "answer" (a run of one stage), "triage" or "main"
    readers: tuple[str, ...]  # reader kinds, in the order their outputs are logged
    rotations: int  # option orders a letter reader reads
    model: ModelPlan | None  # None: no prompt reader
    encoder: EncoderPlan | None
    context: ContextPlan | None  # None: reads no context
    output_suffix: str = ""  # appended to its outputs' names ("@triage")
    orders_per_question: bool = False  # a budgeted first pass: 1 to `rotations` orders, as the budget allows

    @property
    def reads_context(self) -> bool:
        return self.context is not None


@dataclass(frozen=True)
class OrderCompletion:
    """A re-read question whose own context does not cover it is read without context in the
    letter reader's remaining option orders, completing its triage letter reading (of at most
    `orders_read` orders; the first pass chooses how many per question) to all five."""

    orders_read: int


@dataclass(frozen=True)
class BudgetPolicy:
    """The run's time budget: seconds for the whole run, or per question of the run."""

    seconds: float | None = None
    per_question: float | None = None

    def total(self, questions: int) -> float:
        if self.seconds is not None:
            return self.seconds
        return (DEFAULT_BUDGET_PER_QUESTION if self.per_question is None else self.per_question) * questions

    def describe(self) -> str:
        if self.seconds is not None:
            return "no limit" if math.isinf(self.seconds) else f"{self.seconds:g} s for the whole run"
        per_question = DEFAULT_BUDGET_PER_QUESTION if self.per_question is None else self.per_question
        return "no limit" if math.isinf(per_question) else f"{per_question:g} s per question of the run"


@dataclass(frozen=True)
class RereadPlan:
    """The cascade's second stage: which first-pass answers it reads again, how, and who decides."""

    stage: StagePlan
    margin: float  # re-read questions whose top-1 minus top-2 probability is below this, smallest first
    decided_by: Decider
    coverage_threshold: float | None  # with `completion`: context only where it covers this share
    completion: OrderCompletion | None
    budget: BudgetPolicy
    shares_model: bool  # the main stage reads with the triage pass's model (loaded once)
    first_pass_share: float = FIRST_PASS_SHARE  # of the budget the first pass may take (`plan_first_pass`)


@dataclass(frozen=True)
class Plan:
    first: StagePlan
    reread: RereadPlan | None
    letter_prior: bool  # letter readings divided by the letter prior fitted over the first pass
    ensemble: Path | None  # a fitted ensemble decides (and calibrates) instead of the mean
    limit: int | None
    question_batch: int
    share_prefix: bool
    progress: bool
    cluster: ClusterPlan | None = None  # None: read in this process

    @property
    def is_cascade(self) -> bool:
        return self.reread is not None

    def stages(self) -> tuple[StagePlan, ...]:
        return (self.first,) if self.reread is None else (self.first, self.reread.stage)

    @property
    def main_stage(self) -> StagePlan:
        """The stage with the main readers and their context: a cascade's second, else the one stage."""
        return self.stages()[-1]

    def as_dict(self) -> dict[str, object]:
        """The plan as run.json records it (paths as text)."""
        described = _jsonable(asdict(self))
        assert isinstance(described, dict)
        return described

    def describe(self) -> str:
        """The plan in a few lines, as `openbook answer --dry-run` prints it."""
        lines = []
        for number, stage in enumerate(self.stages(), start=1):
            lines.append(f"stage {number}: {stage.name} - {_describe_stage(stage)}")
        if self.reread is None:
            lines.append("every question is read once; " + _decider(self.ensemble))
        else:
            rule = self.reread
            lines.append(
                f"budget: {rule.budget.describe()}, every reading costed in the prompt tokens it will evaluate at "
                "the pace measured at start-up and over the run"
            )
            if self.first.orders_per_question:
                lines.append(
                    f"first pass: within {rule.first_pass_share:.0%} of the budget, every question 1 option order, "
                    f"then a 2nd, up to {self.first.rotations}, cheapest questions first, while they fit; where one "
                    "order per question cannot fit the whole budget the run says so at the start and reads that"
                )
            lines.append(
                f"re-read: questions whose top-1 minus top-2 probability is below {rule.margin:g}, smallest first, "
                f"each where its own cost fits the budget left (else a cheaper one goes ahead); "
                f"decided by the {rule.decided_by}"
            )
            if rule.completion is not None:
                lines.append(
                    f"routing: context where one packed passage holds >= {rule.coverage_threshold:g} of the words "
                    f"of prompt + one option, else the letter reader's remaining option orders (up to "
                    f"{len(LETTERS)}) without context"
                )
        if self.letter_prior:
            lines.append("letter prior: fitted over the first pass, divided out of every letter reading")
        if self.cluster is not None:
            lines.append(_describe_cluster(self.cluster))
        return "\n".join(lines)


def _describe_cluster(cluster: ClusterPlan) -> str:
    where = (
        "a Ray cluster started on this machine"
        if cluster.address == "local"
        else f"the Ray cluster at {cluster.address}"
    )
    actors = f"{cluster.actors} actors" if cluster.actors else "an actor per node"
    threads = f"{cluster.threads} threads each" if cluster.threads else "a node's CPUs each"
    return (
        f"read on {where}: {actors}, {threads}, each holding the models; retrieval, costing, the budget and "
        "every decision here"
    )


def _decider(ensemble: Path | None) -> str:
    return f"decided by the fitted ensemble {ensemble}" if ensemble is not None else "decided by the readers' mean"


def _describe_stage(stage: StagePlan) -> str:
    up_to = "up to " if stage.orders_per_question else ""
    readers = ", ".join(
        f"letter in {up_to}{stage.rotations} option order{'s' if stage.rotations > 1 else ''}"
        if kind == "letter"
        else kind
        for kind in stage.readers
    )
    model = f" on {stage.model.name} ({stage.model.backend})" if stage.model is not None else ""
    encoder = f"; encoder {stage.encoder.model}" if stage.encoder is not None else ""
    if stage.context is None:
        context = "no context"
    else:
        context = (
            f"context: {' + '.join(stage.context.retrieval)}, {stage.context.passages} passages"
            f"{' (their sentences on the question)' if stage.context.evidence == 'sentences' else ''} packed into "
            f"{stage.context.tokens} tokens from {stage.context.index}"
        )
    return f"{readers}{model}{encoder}; {context}"


def _jsonable(value: object) -> object:
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return str(value) if isinstance(value, Path) else value


def triage_readers(options: AnswerOptions) -> list[str]:
    """The triage pass's readers. `auto` is the main readers when they are all prompt readers and no
    fitted ensemble expects particular ones; otherwise there is no automatic triage."""
    if options.triage_readers == [NO_TRIAGE]:
        return []
    if options.triage_readers != [AUTO_TRIAGE]:
        return list(options.triage_readers)
    if options.ensemble is not None or not all(name in PROMPT_READERS for name in options.readers):
        return []
    return list(options.readers)


def triage_options(options: AnswerOptions) -> AnswerOptions:
    """The cascade's cheap pass: its readers, model and context budget; the rest as the main stage."""
    rotations = options.rotations if options.triage_rotations is None else options.triage_rotations
    return replace(
        options,
        readers=triage_readers(options),
        model=options.triage_model or options.model,
        context_tokens=options.triage_context_tokens,
        rotations=rotations,
        triage_readers=[],
    )


def make_plan(options: AnswerOptions) -> Plan:
    """Check the options and decide the run: every mistake is reported here, before a model loads."""
    check_bounds(options)
    check_engine(options.dense_engine)
    if options.evidence not in EVIDENCE_KINDS:
        raise ConfigError(f"unknown --evidence {options.evidence!r}; choose from {', '.join(EVIDENCE_KINDS)}")
    _check_readers(options.readers, options.encoder)
    _check_backend_extras(options)
    retrieval = _resolve_retrieval(options)
    triage = triage_readers(options)
    budget = BudgetPolicy(options.budget_seconds, options.budget_per_question)
    budgeted = options.budget_seconds is not None or options.budget_per_question is not None
    if budgeted and not triage:
        raise ConfigError("a time budget plans a cascade, which needs triage readers (--triage READER)")
    if options.budget_seconds is not None and options.budget_per_question is not None:
        raise ConfigError("give the cascade's budget once: --budget-seconds or --budget-per-question")
    main = _stage("main", options, retrieval)
    run_settings = partial(
        Plan,
        letter_prior=options.letter_prior,
        ensemble=options.ensemble,
        limit=options.limit,
        question_batch=options.question_batch,
        share_prefix=options.share_prefix,
        progress=options.progress,
        cluster=_cluster(options),
    )
    if triage:
        _check_readers(triage, options.encoder)
        first = _stage("triage", triage_options(options), retrieval, TRIAGE_SUFFIX)
        first = replace(first, orders_per_question=_orders_vary(first))
        if _adds_a_reading(first, main):
            completion = _order_completion(options, first, main)
            reread = RereadPlan(
                stage=main,
                margin=options.escalate_margin,
                decided_by=(
                    "ensemble"
                    if options.ensemble is not None
                    else "mean of both stages"
                    if options.average_stages
                    else "main stage"
                ),
                coverage_threshold=options.context_coverage if completion is not None else None,
                completion=completion,
                budget=budget,
                shares_model=first.model is not None and main.model is not None and first.model == main.model,
            )
            return run_settings(first=first, reread=reread)
        if budgeted:  # said, not ignored
            raise ConfigError(
                "a time budget plans a cascade's re-reading, and this run has none: the main stage would read "
                "nothing the triage pass does not (no --index to read context from, and the same readers and model)"
            )
    return run_settings(first=replace(main, name="answer"), reread=None)


def _cluster(options: AnswerOptions) -> ClusterPlan | None:
    if options.ray is None:
        if options.ray_actors is not None:
            raise ConfigError("--ray-actors spreads the reading over a Ray cluster: give --ray [ADDRESS] too")
        return None
    return ClusterPlan(options.ray, options.ray_actors, options.threads)


def _adds_a_reading(first: StagePlan, main: StagePlan) -> bool:
    """The main stage reads something the triage pass did not: other readers, another model or more
    context (without an index both read none, and there is no cascade)."""
    more_context = (main.context.tokens if main.context else 0) > (first.context.tokens if first.context else 0)
    same_model = (first.model.name if first.model else None) == (main.model.name if main.model else None)
    return not (set(main.readers) <= set(first.readers) and same_model and not more_context)


def _order_completion(options: AnswerOptions, first: StagePlan, main: StagePlan) -> OrderCompletion | None:
    """None where every re-read question reads its context: no coverage threshold, a fitted ensemble
    (it knows the readers it was fitted on), a main stage that adds more than context (other readers,
    or no context to add), a triage pass that read context, used another model or no letter reader,
    or already read every order."""
    if (
        options.context_coverage <= 0
        or options.ensemble is not None
        or main.model is None
        or not set(main.readers) <= set(first.readers)
        or main.context is None
        or first.context is not None
        or first.model is None
        or first.model.name != main.model.name
        or "letter" not in first.readers
        or first.rotations >= len(LETTERS)
    ):
        return None
    return OrderCompletion(first.rotations)


def _orders_vary(first: StagePlan) -> bool:
    """The first pass's option orders are chosen per question where they can be: a letter reader
    among prompt readers only, in more than one order."""
    kinds = first.readers
    return first.rotations > 1 and "letter" in kinds and all(kind in PROMPT_READERS for kind in kinds)


def _stage(name: str, options: AnswerOptions, retrieval: tuple[str, ...], suffix: str = "") -> StagePlan:
    prompt = [kind for kind in options.readers if kind in PROMPT_READERS]
    model = (
        ModelPlan(options.model, options.backend, options.n_ctx, options.threads, options.adapter, options.packed)
        if prompt
        else None
    )
    encoder = (
        EncoderPlan(str(options.encoder), options.encoder_tokens, options.threads)
        if "encoder" in options.readers and options.encoder is not None
        else None
    )
    context = None
    if options.index is not None and options.context_tokens > 0:
        context = ContextPlan(
            Path(options.index),
            retrieval,
            options.passages,
            options.candidates,
            options.dense_engine,
            options.context_tokens,
            options.evidence,
        )
    # prompt readers are read together first, then the encoder: the order of their outputs
    readers = tuple(prompt) + (("encoder",) if "encoder" in options.readers else ())
    return StagePlan(name, readers, options.rotations, model, encoder, context, suffix)


def _check_readers(readers: list[str], encoder: str | None) -> None:
    for name in readers:
        if name not in READER_KINDS:
            raise ConfigError(f"unknown reader {name!r}; choose from {', '.join(READER_KINDS)}")
    if len(set(readers)) < len(readers):
        raise ConfigError(f"--reader {' '.join(readers)} names a reader twice")
    if not readers:
        raise ConfigError("no reader: pass --reader letter, yesno or encoder")
    if "encoder" in readers and not encoder:
        raise ConfigError("the encoder reader needs a model: pass --encoder FOLDER (from `openbook train encoder`)")


def _check_backend_extras(options: AnswerOptions) -> None:
    """Options only the transformers backends take."""
    extras = [name for name, value in (("adapter", options.adapter), ("packed", options.packed)) if value]
    if extras and options.backend not in TRANSFORMERS_BACKENDS:
        raise ConfigError(f"{', '.join(extras)} need the transformers backend (--backend transformers)")


def _resolve_retrieval(options: AnswerOptions) -> tuple[str, ...]:
    """The pipelines `--retrieval` names, as labels resolved on the index (`auto` becomes what it
    picks there); two that are one (`bm25` and `bm25/joint`) would be read twice and logged under one
    name, so they are refused."""
    for text in options.retrieval:
        if text != AUTO:
            RetrievalSpec.parse(text)
    if not options.retrieval:
        raise ConfigError("no retrieval pipeline: pass --retrieval (auto, bm25, …)")
    if options.index is None:
        return tuple(options.retrieval)
    retrieval = Retrieval(Path(options.index), candidates=options.candidates, dense_engine=options.dense_engine)
    labels = [retrieval.resolve(text).label() for text in options.retrieval]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ConfigError(
            f"--retrieval {' '.join(options.retrieval)} names the pipeline {', '.join(repeated)} twice "
            f"on {options.index}"
        )
    return tuple(labels)
