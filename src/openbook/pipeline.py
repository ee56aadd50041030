"""The path a question takes: exam -> retrieve -> pack context -> read -> ensemble -> prediction.

`answer_exam` runs it for a whole exam: retrieval batched across questions, then reading question by
question, every reader served by one evaluation of the question's shared prefix. The files a run
leaves are written by `openbook.evaluate.report.write_run`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from openbook.backends import Backend, load_backend
from openbook.backends.base import model_token_counter
from openbook.config import check_at_least
from openbook.ensemble import Ensemble, average_probabilities, prediction_from, scored_question
from openbook.errors import OpenbookError
from openbook.progress import meter
from openbook.readers import EncoderReader, LetterReader, Reader, YesNoReader, read_questions
from openbook.readers.letter import (
    SlotPrior,
    complete_rotations,
    estimate_slot_prior,
    orders_read,
    rotation_reader_name,
    with_slot_prior,
)
from openbook.records import LETTERS, Context, Hit, OrderReading, Prediction, Question, ReaderOutput
from openbook.retrieve import Retrieval, RetrievalSpec
from openbook.retrieve.context import pack_context, packed_texts, question_coverage

DEFAULT_MODEL = "qwen2.5-coder-1.5b-instruct"
DEFAULT_BUDGET_PER_QUESTION = 10.0  # seconds: the CPU target the default cascade was measured against
TRIAGE_SUFFIX = "@triage"  # names the triage pass's outputs in predictions.jsonl
AUTO_TRIAGE = "auto"  # the triage pass: the same language-model readers, no context
NO_TRIAGE = "none"  # no triage pass: one stage
ESCALATION_RETRIEVAL_BATCH = 16  # contexts the main stage retrieves at a time (batched queries are cheaper)


@dataclass
class AnswerOptions:
    """Everything `openbook answer` / `eval` can be told (CLI > [answer] table of a config > here)."""

    exam: Path | None = None
    index: Path | None = None
    out: Path | None = None
    model: str = DEFAULT_MODEL
    backend: str = "llama.cpp"  # or transformers, transformers-layered (models larger than memory)
    adapter: str | None = None  # transformers: a LoRA adapter from `openbook train llm`
    packed: bool = False  # transformers: a question's options in one sequence (4-D mask)
    readers: list[str] = field(default_factory=lambda: ["letter"])
    encoder: str | None = None  # the `encoder` reader's multiple-choice model (`openbook train encoder`)
    encoder_tokens: int = 384  # the encoder reads at most this many tokens per option
    rotations: int = 1  # letter reader: option orders averaged (permutation debiasing)
    share_prefix: bool = True  # evaluate context + question once per question (KV cache reuse)
    # one context per pipeline (plan.py grammar). `auto`: hybrid-rrf+embed where the index has a dense
    # part, else bm25 (README, "Choosing the default": the cascade answers as well with either, and the
    # hybrid finds the source passage far more often)
    retrieval: list[str] = field(default_factory=lambda: ["auto"])
    candidates: int = 50  # per retriever before fusion or reranking
    dense_engine: str = "matmul"
    passages: int = 8  # retrieved per question, before packing
    context_tokens: int = 500  # token budget of the packed context; 0 = no context (README: why 500)
    n_ctx: int = 2048  # tokens per sequence: context + question + one option listing
    question_batch: int = 1  # questions read together (the transformers backends batch across them)
    threads: int | None = None
    limit: int | None = None  # answer only the first N questions
    resume: bool = False  # keep the answers a stopped run left in `out`; answer the rest
    ensemble: Path | None = None  # from `openbook ensemble fit`: how readers combine, calibrated confidence
    # cascade (3rd and 5th place): a cheap triage pass answers every question first; the readers above
    # re-read only the hardest (smallest top-1/top-2 margin) while the time budget lasts. The default,
    # "auto", is the best measured under 10 s/question on 2 cores (README, "Ensembles, confidence and
    # cascades"): the same language-model readers without context, then with retrieved context where it
    # covers the question (`context_coverage`), else in more option orders.
    triage_readers: list[str] = field(default_factory=lambda: [AUTO_TRIAGE])  # [] or ["none"]: no cascade
    triage_model: str | None = None  # the triage pass's language model (default: `model`)
    triage_context_tokens: int = 0  # the triage pass's context budget
    # the triage pass's letter rotations (None: `rotations`). 3: a debiased triage answers better
    # without context, and with both stages deciding it won the real runs on both exams (README,
    # "Which triage pass"), though it leaves fewer questions to re-read
    triage_rotations: int | None = 3
    escalate_margin: float = 1.0  # only questions whose top-1 minus top-2 probability is below this
    # unfitted, a re-read question is decided by the mean of both stages' outputs (the reading without
    # context and the one with it), else by the main readers alone; a fitted ensemble always weighs both.
    # The mean won in every replay on two exams and in the recorded real runs (README, "Who decides")
    average_stages: bool = True
    # a re-read question whose retrieved context is not about it (no packed passage holds this share of
    # its words) is read without context in the letter reader's remaining option orders instead, which
    # costs a fifth to under half as much; 0: every re-read question reads its context. Context helped the questions
    # it covered and hurt the others; 0.5 tells Wikipedia-sourced questions from ARC's best on held-out
    # questions (README, "Where context helps")
    context_coverage: float = 0.5
    # letter readers: after the first pass, divide each reading by the model's letter prior fitted over
    # that pass; re-reads without context take the triage pass's prior. Off: on three held-out sets
    # it gained on one and lost on another at the triage's 3 orders (README, "Letter prior")
    letter_prior: bool = False
    budget_seconds: float | None = None  # the whole run's budget (inf: the margin alone decides) ...
    budget_per_question: float | None = None  # ... or per question; neither: DEFAULT_BUDGET_PER_QUESTION
    progress: bool = True


@dataclass(frozen=True)
class RetrievedContext:
    retrieval: str  # the pipeline that found it ("none" without an index)
    hits: list[Hit]
    context: Context


NO_CONTEXT = RetrievedContext("none", [], Context("", (), 0))


@dataclass
class QuestionResult:
    question: Question
    prediction: Prediction
    outputs: list[ReaderOutput]  # every reader on every context
    contexts: list[RetrievedContext]
    # what the cascade's routing measured for a re-read question (`question_coverage` of its own
    # retrieved contexts, read or not); None where no routing took place
    context_coverage: float | None = None


@dataclass
class Run:
    results: list[QuestionResult]
    seconds: dict[str, float]
    settings: dict[str, object]
    failure: str | None = None  # why the run stopped early; `results` holds what was answered before


@dataclass(frozen=True)
class EarlierRun:
    """What a resumed run takes over from the runs before it in the same folder."""

    answered: frozenset[str] = frozenset()  # answered for good: not read again
    # first-pass answers taken up again: a cascade's re-read candidates, and re-divided by a letter prior
    first_pass: Sequence[QuestionResult] = ()
    # the `answered` ones' letter readings (reader name, reading): a letter prior is fitted on them too
    readings: Sequence[tuple[str, OrderReading]] = ()
    seconds: float = 0.0  # what the earlier runs spent: a cascade's budget counts it as spent


READER_NAMES = ("letter", "yesno", "encoder")
LLM_READERS = ("letter", "yesno")
AnyReader = Reader | EncoderReader


def check_readers(options: AnswerOptions) -> None:
    for name in options.readers:
        if name not in READER_NAMES:
            raise ValueError(f"unknown reader {name!r}; choose from {', '.join(READER_NAMES)}")
    if "encoder" in options.readers and not options.encoder:
        raise ValueError("the encoder reader needs a model: pass --encoder FOLDER (from `openbook train encoder`)")


def needs_backend(options: AnswerOptions) -> bool:
    return any(name in LLM_READERS for name in options.readers)


def build_readers(options: AnswerOptions, backend: Backend | None) -> list[AnyReader]:
    check_readers(options)
    readers: list[AnyReader] = []
    for name in options.readers:
        if name == "letter":
            readers.append(LetterReader(backend, rotations=options.rotations))
        elif name == "yesno":
            readers.append(YesNoReader(backend))
        else:
            readers.append(EncoderReader(options.encoder, max_tokens=options.encoder_tokens, threads=options.threads))
    return readers


def model_seconds(backend: Backend | None, readers: Sequence[AnyReader]) -> float:
    """Time spent evaluating models so far: the language model and every encoder reader."""
    encoders = sum(r.model_seconds for r in readers if isinstance(r, EncoderReader))
    return encoders + (backend.model_seconds if backend is not None else 0.0)


def settings_of(options: AnswerOptions) -> dict[str, object]:
    """The options as run.json records them (paths as text)."""
    return {key: (str(value) if isinstance(value, Path) else value) for key, value in asdict(options).items()}


def retrieve_contexts(
    questions: Sequence[Question],
    retrieval: Retrieval | None,
    options: AnswerOptions,
    count_tokens: Callable[[str], int],
) -> list[list[RetrievedContext]]:
    """Per question, one packed context per retrieval pipeline (several: readers ensemble over them);
    `count_tokens` measures the budget in the tokens of the model that reads it."""
    if retrieval is None or options.context_tokens <= 0:
        return [[NO_CONTEXT] for _ in questions]

    per_pipeline = []
    for spec in resolve_retrievals(options.retrieval, retrieval):
        hit_lists = retrieval.search(questions, spec, options.passages)
        per_pipeline.append(
            [
                RetrievedContext(spec.label(), hits, pack_context(hits, options.context_tokens, count_tokens))
                for hits in hit_lists
            ]
        )
    return [list(contexts) for contexts in zip(*per_pipeline)]


def resolve_retrievals(texts: Sequence[str], retrieval: Retrieval) -> list[RetrievalSpec]:
    """The pipelines `texts` name on this index; two that are one (`bm25` and `bm25/joint`, or `auto`
    and what it chooses here) would be read twice and logged under one name, so they are refused."""
    specs = [retrieval.resolve(text) for text in texts]
    labels = [spec.label() for spec in specs]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ValueError(
            f"--retrieval {' '.join(texts)} names the pipeline {', '.join(repeated)} twice on {retrieval.index}"
        )
    return specs


def token_counter(backend: Backend | None, readers: Sequence[AnyReader]) -> Callable[[str], int]:
    """Context budgets are counted in the language model's tokens, else in the encoder's."""
    if backend is not None:
        return model_token_counter(backend)
    return next(r for r in readers if isinstance(r, EncoderReader)).count_tokens


def read_batch(
    readers: Sequence[AnyReader],
    backend: Backend | None,
    questions: Sequence[Question],
    contexts_per_question: Sequence[Sequence[RetrievedContext]],
    share_prefix: bool,
) -> list[list[ReaderOutput]]:
    """Every reader on every context of every question, in the readers' order. Language-model readers
    share one prefix pass per question, and all the questions go to the backend in one call per
    context where it batches across questions. With several contexts each output is named reader@pipeline."""
    language = [r for r in readers if not isinstance(r, EncoderReader)]
    outputs: list[list[ReaderOutput]] = [[] for _ in questions]
    for k in range(len(contexts_per_question[0])):
        retrieved = [contexts[k] for contexts in contexts_per_question]
        read = (
            read_questions(language, backend, questions, [r.context for r in retrieved], share_prefix)
            if language
            else [[] for _ in questions]
        )
        for i, question in enumerate(questions):
            from_language = iter(read[i])
            for reader in readers:
                if isinstance(reader, EncoderReader):
                    output = ReaderOutput(
                        question.id,
                        reader.name,
                        reader.read(question, retrieved[i].context),
                        evidence=retrieved[i].context.passage_ids,
                    )
                else:
                    output = next(from_language)
                if len(contexts_per_question[i]) > 1:
                    output = replace(output, reader=f"{output.reader}@{retrieved[i].retrieval}")
                outputs[i].append(output)
    return outputs


def read_contexts(
    readers: Sequence[AnyReader],
    backend: Backend | None,
    question: Question,
    contexts: Sequence[RetrievedContext],
    share_prefix: bool,
) -> list[ReaderOutput]:
    return read_batch(readers, backend, [question], [contexts], share_prefix)[0]


def combine(
    question: Question, outputs: Sequence[ReaderOutput], contexts: Sequence[RetrievedContext], ensemble: Ensemble | None
) -> Prediction:
    """One prediction from every reader output: a fitted ensemble (calibrated confidence) or the mean."""
    if ensemble is None:
        return prediction_from(question.id, average_probabilities(outputs))
    scored = scored_question(question, {o.reader: o.probabilities for o in outputs}, evidence_text(contexts))
    return prediction_from(
        question.id, dict(zip(question.letters, map(float, ensemble.probabilities(scored)))), calibrated=True
    )


def evidence_text(contexts: Sequence[RetrievedContext]) -> str:
    """The passages that went into the contexts, whole, as predictions.jsonl logs them: the text the
    ensemble's coverage features are computed from, alike when fitting (from the log) and answering."""
    return "\n".join(
        hit.passage.text
        for retrieved in contexts
        for hit in retrieved.hits
        if hit.passage.id in retrieved.context.passage_ids
    )


def margin(prediction: Prediction) -> float:
    """Top-1 minus top-2 probability: small when the readers hesitate."""
    top = sorted(prediction.probabilities.values(), reverse=True) + [0.0]
    return top[0] - top[1]


@dataclass
class Stage:
    """A backend (None for encoder-only stages) and the readers it serves."""

    backend: Backend | None
    readers: list[AnyReader]

    @property
    def model_seconds(self) -> float:
        return model_seconds(self.backend, self.readers)


def load_stage(
    options: AnswerOptions, backend: Backend | None = None, readers: Sequence[AnyReader] | None = None
) -> Stage:
    if readers is None:
        check_readers(options)
    if backend is None and needs_backend(options) and readers is None:
        backend = load_backend(
            options.backend, options.model, n_ctx=options.n_ctx, n_threads=options.threads, **backend_extras(options)
        )
    return Stage(backend, list(readers) if readers is not None else build_readers(options, backend))


def backend_extras(options: AnswerOptions) -> dict[str, object]:
    """Options only the transformers backends take, passed when set."""
    extras = {key: value for key, value in (("adapter", options.adapter), ("packed", options.packed)) if value}
    if extras and not options.backend.startswith("transformers"):
        raise ValueError(f"{', '.join(extras)} need the transformers backend (--backend transformers)")
    return extras


def triage_readers(options: AnswerOptions) -> list[str]:
    """The triage pass's readers. `auto` is the main readers when they are all language-model readers
    and no fitted ensemble expects particular ones; otherwise there is no automatic triage."""
    if options.triage_readers == [NO_TRIAGE]:
        return []
    if options.triage_readers != [AUTO_TRIAGE]:
        return options.triage_readers
    if options.ensemble is not None or not all(name in LLM_READERS for name in options.readers):
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


def check_counts(options: AnswerOptions) -> None:
    check_at_least("--limit", options.limit, unit="questions")
    check_at_least("--passages", options.passages, unit="passages")


def check_cascade(options: AnswerOptions) -> None:
    for name, budget in (
        ("--budget-seconds", options.budget_seconds),
        ("--budget-per-question", options.budget_per_question),
    ):
        if budget is not None and not budget >= 0:  # NaN too
            raise ValueError(f"{name} must be a number of seconds >= 0 (inf: no limit); got {budget}")
    budgeted = options.budget_seconds is not None or options.budget_per_question is not None
    if not triage_readers(options):
        if budgeted:
            raise ValueError("a time budget plans a cascade, which needs triage readers (--triage READER)")
        return
    if budgeted and not runs_cascade(options):  # said, not ignored
        raise ValueError(
            "a time budget plans a cascade's re-reading, and this run has none: the main stage would "
            "read nothing the triage pass does not (no --index to read context from, and the same "
            "readers and model)"
        )
    if not 0 <= options.context_coverage <= 1:
        raise ValueError(
            "--context-coverage is a share of the question's words (prompt and one option), 0-1; "
            f"got {options.context_coverage}"
        )
    if options.budget_seconds is not None and options.budget_per_question is not None:
        raise ValueError("give the cascade's budget once: --budget-seconds or --budget-per-question")
    check_readers(triage_options(options))


def context_read(options: AnswerOptions) -> int:
    """The context budget a stage really reads: none without an index."""
    return options.context_tokens if options.index is not None else 0


def runs_cascade(options: AnswerOptions) -> bool:
    """Triage readers are set and the main stage would read something they do not: other readers,
    another model or more context (without an index both stages read none, so no cascade)."""
    if not triage_readers(options):
        return False
    triage = triage_options(options)
    return not (
        set(options.readers) <= set(triage.readers)
        and triage.model == options.model
        and context_read(options) <= context_read(triage)
    )


def cascade_budget(options: AnswerOptions, questions: int) -> float:
    if options.budget_seconds is not None:
        return options.budget_seconds
    per_question = options.budget_per_question
    return (DEFAULT_BUDGET_PER_QUESTION if per_question is None else per_question) * questions


def answer_exam(
    questions: Sequence[Question],
    options: AnswerOptions,
    backend: Backend | None = None,
    readers: Sequence[AnyReader] | None = None,
    on_result: Callable[[QuestionResult], None] | None = None,
    earlier: EarlierRun = EarlierRun(),
) -> Run:
    """Answer `questions` (the first `options.limit`, less those `earlier` runs answered); `on_result`
    sees each answer as soon as it is made, and again if a cascade or letter prior changes it. A
    backend for `options.model`, or readers of a run without triage (benchmarks, tests), may be passed in.

    With a cascade (`triage_readers`) the triage pass answers every question; then the hardest are
    re-read first (smallest margin, below `escalate_margin`), by the main readers with context or in
    the letter reader's remaining option orders (`escalate`), while the time left in the budget allows
    one more at the pace measured so far for that kind of re-read. `earlier.first_pass` answers join
    this run's first pass, not read again; the budget covers every question of the run, the earlier
    runs' time counted as spent."""
    started = time.perf_counter()
    check_counts(options)
    check_cascade(options)
    cascade = runs_cascade(options)
    if cascade and readers is not None:
        raise ValueError("readers passed in serve a run without triage: set triage_readers=[]")
    ensemble = Ensemble.load(Path(options.ensemble)) if options.ensemble is not None else None
    if options.limit is not None:
        questions = questions[: options.limit]
    answered_before = sum(q.id in earlier.answered for q in questions)
    taken_up = {result.question.id for result in earlier.first_pass}
    questions = [q for q in questions if q.id not in earlier.answered and q.id not in taken_up]
    first_options = triage_options(options) if cascade else replace(options, triage_readers=[])
    first_backend = backend if first_options.model == options.model else None
    triaging = cascade and bool(questions)  # a resumed cascade may have triaged every question already
    if triaging or not cascade:
        stage = load_stage(first_options, first_backend, readers)
    else:  # nothing for the triage model to read: not loaded
        stage = Stage(first_backend, [])
    loaded = time.perf_counter()
    contexts_per_question = (
        retrieve_contexts(
            questions, retrieval_for(first_options), first_options, token_counter(stage.backend, stage.readers)
        )
        if questions
        else []
    )
    retrieved = time.perf_counter()
    results: list[QuestionResult] = list(earlier.first_pass)
    failure = None
    seconds_before = stage.model_seconds
    batch = max(1, options.question_batch)
    with meter("triage" if cascade else "answering", len(questions), ("questions",), enabled=options.progress) as m:
        for start in range(0, len(questions), batch):
            chunk, chunk_contexts = questions[start : start + batch], contexts_per_question[start : start + batch]
            answered: list[QuestionResult] = []
            try:
                read = read_batch(stage.readers, stage.backend, chunk, chunk_contexts, options.share_prefix)
                for question, contexts, outputs in zip(chunk, chunk_contexts, read):
                    if cascade:
                        outputs = [replace(o, reader=o.reader + TRIAGE_SUFFIX) for o in outputs]
                    prediction = combine(question, outputs, contexts, first_pass_decider(ensemble, outputs, cascade))
                    answered.append(QuestionResult(question, prediction, outputs, contexts))
            except (ValueError, RuntimeError, OpenbookError) as error:  # keep what was answered; the caller reports
                named = chunk[0].id if len(chunk) == 1 else f"{chunk[0].id}..{chunk[-1].id}"
                failure = f"question {named!r}: {error}"
            for result in answered:
                results.append(result)
                if on_result is not None:
                    on_result(result)
            if failure is not None:
                break
            m.advance(completed=len(results) - len(earlier.first_pass), questions=len(chunk))
    spent = stage.model_seconds - seconds_before
    priors = apply_letter_prior(results, ensemble, cascade, on_result, earlier.readings) if options.letter_prior else {}
    escalation: dict[str, object] = {"triage_readers": triage_readers(options), "escalated": 0}  # if triage failed
    if cascade and failure is None:
        # the main stage reuses the triage pass's model when it is the same one
        shared = stage.backend if first_options.model == options.model else backend
        budget = cascade_budget(options, len(results) + answered_before)
        escalation, escalated_seconds, failure = escalate(
            results, options, ensemble, started - earlier.seconds, budget, shared, on_result, priors
        )
        escalation["earlier_runs_seconds"] = earlier.seconds
        spent += escalated_seconds
    finished = time.perf_counter()
    reading = finished - retrieved
    seconds = {
        "total": finished - started,
        "load_model": loaded - started,
        "retrieve_and_pack": retrieved - loaded,
        "read": reading,
        "model": spent,
        # over the whole run: a resumed one's earlier parts and the questions they answered included
        "earlier_runs": earlier.seconds,
        "per_question": (earlier.seconds + finished - loaded) / max(len(results) + answered_before, 1),
        # everything that is not a model evaluating tokens, as a share of answering time
        "overhead_fraction": (finished - loaded - spent) / max(finished - loaded, 1e-9),
    }
    settings = settings_of(options)
    settings["model_path"] = getattr(stage.backend, "model_path", first_options.model)
    if cascade:  # the main stage's model, None when it never loaded (nothing to re-read, or no time left)
        settings["triage_model_path"] = settings["model_path"] if triaging else None
        settings["model_path"] = escalation.get("model_path")
    # every output name in the run, first seen first (in a cascade, re-read questions add the main readers')
    settings["reader_names"] = list(dict.fromkeys(output.reader for result in results for output in result.outputs))
    settings["cascade"] = escalation if cascade else False
    return Run(results=results, seconds=seconds, settings=settings, failure=failure)


def first_pass_decider(ensemble: Ensemble | None, outputs: Sequence[ReaderOutput], cascade: bool) -> Ensemble | None:
    """A fitted ensemble knows the main readers; triage outputs it does not cover are averaged."""
    if cascade and ensemble is not None and not ensemble.covers({o.reader for o in outputs}):
        return None
    return ensemble


def apply_letter_prior(
    results: list[QuestionResult],
    ensemble: Ensemble | None,
    cascade: bool,
    on_result: Callable[[QuestionResult], None] | None,
    earlier_readings: Sequence[tuple[str, OrderReading]] = (),
) -> dict[str, SlotPrior]:
    """Every letter reading of the first pass divided by its reader's slot prior over the whole pass
    (with `earlier_readings`: those of questions earlier runs answered for good), in place on
    `results`; the changed answers are handed to `on_result` again. Returns the prior per reader output name."""
    readings: dict[str, list[OrderReading]] = {}
    for name, reading in earlier_readings:
        readings.setdefault(name, []).append(reading)
    for result in results:
        for output in result.outputs:
            if output.orders is not None:
                readings.setdefault(output.reader, []).append(output.orders)
    priors = {name: estimate_slot_prior(found) for name, found in readings.items()}
    for i, result in enumerate(results):
        if not any(o.orders is not None for o in result.outputs):
            continue
        outputs = [
            with_slot_prior(o, result.question.letters, priors[o.reader]) if o.orders is not None else o
            for o in result.outputs
        ]
        prediction = combine(result.question, outputs, result.contexts, first_pass_decider(ensemble, outputs, cascade))
        results[i] = replace(result, prediction=prediction, outputs=outputs)
        if on_result is not None and prediction != result.prediction:
            on_result(results[i])
    return priors


def retrieval_for(options: AnswerOptions) -> Retrieval | None:
    if context_read(options) <= 0:
        return None
    return Retrieval(options.index, candidates=options.candidates, dense_engine=options.dense_engine)


@dataclass(frozen=True)
class OrderCompletion:
    """How the main stage re-reads a question its retrieved context does not cover: the triage pass's
    letter reader (output `triage_name`, `read` orders) read over the remaining option orders, without
    context, then merged into the full-order reading (`complete_rotations`)."""

    triage_name: str
    read: int
    reader: LetterReader


def order_completion(
    options: AnswerOptions, backend: Backend | None, ensemble: Ensemble | None
) -> OrderCompletion | None:
    """None where every re-read question reads its context: no coverage threshold, a fitted ensemble
    (it knows the readers it was fitted on), a main stage that adds more than context (other readers,
    or no context to add), a triage pass that read context, used another model or no letter reader,
    or already read every order."""
    triage = triage_options(options)
    if (
        options.context_coverage <= 0
        or ensemble is not None
        or backend is None
        or not set(options.readers) <= set(triage.readers)
        or context_read(options) <= 0
        or context_read(triage) > 0
        or triage.model != options.model
        or "letter" not in triage.readers
        or triage.rotations >= len(LETTERS)
    ):
        return None
    return OrderCompletion(
        rotation_reader_name(triage.rotations) + TRIAGE_SUFFIX,
        triage.rotations,
        LetterReader(backend, rotations=len(LETTERS), first_rotation=triage.rotations),
    )


def triage_reading(completion: OrderCompletion | None, result: QuestionResult) -> ReaderOutput | None:
    """The triage reading `completion` would complete; None without one or without its order reading
    (a resumed run's log may lack them)."""
    if completion is None:
        return None
    return next((o for o in result.outputs if o.reader == completion.triage_name and o.orders is not None), None)


def read_remaining_orders(
    completion: OrderCompletion,
    backend: Backend,
    result: QuestionResult,
    triage: ReaderOutput,
    share_prefix: bool,
    prior: SlotPrior | None = None,
) -> tuple[list[ReaderOutput], list[ReaderOutput]]:
    """The question's outputs with the full-order reading added (named `letter-rot5@none`, apart from
    a main reader with 5 rotations, which reads context), and the outputs that decide it: the
    full-order reading in place of the triage letter reading it contains. `prior`: the triage
    reading's slot prior, which the orders read now share (same model and prompt, no context)."""
    question = result.question
    (rest,) = read_contexts([completion.reader], backend, question, [NO_CONTEXT], share_prefix)
    full = complete_rotations(triage, rest, len(LETTERS), question.letters, prior)
    full = replace(full, reader=f"{full.reader}@{NO_CONTEXT.retrieval}")
    return [*result.outputs, full], [o for o in result.outputs if o is not triage] + [full]


def mean_pace(seconds: Sequence[float]) -> float:
    return sum(seconds) / len(seconds) if seconds else 0.0


def escalate(
    results: list[QuestionResult],
    options: AnswerOptions,
    ensemble: Ensemble | None,
    started: float,
    budget: float,
    backend: Backend | None,
    on_result: Callable[[QuestionResult], None] | None,
    priors: dict[str, SlotPrior],
) -> tuple[dict[str, object], float, str | None]:
    """The cascade's main stage on the hardest triaged questions, in place on `results`, while
    `budget` seconds since `started` last; returns what it did, its model seconds and a failure
    (None when it finished). Nothing is loaded or retrieved
    once the budget is spent; contexts are retrieved a batch at a time, hardest first, so a budget
    that stops early has not paid for the rest.

    A question whose context covers it (`context_coverage`) is read with it; another is read in the
    letter reader's remaining option orders without context (`OrderCompletion`). Each kind of re-read
    keeps its own pace, and a question goes ahead while its kind's pace fits the budget left; while
    the cheaper kind still fits, contexts go on being retrieved (a batch at a time) to route the rest."""
    hardest = sorted(
        (margin(r.prediction), i) for i, r in enumerate(results) if margin(r.prediction) < options.escalate_margin
    )
    budget = budget if hardest else 0.0
    record: dict[str, object] = {
        "triage_readers": triage_readers(options),
        "candidates": len(hardest),
        "escalated": 0,
        "read_without_context": 0,
        "stopped_by_budget": False,
        "budget_seconds": None if math.isinf(budget) else budget,
    }
    if not hardest:
        return record, 0.0, None
    if time.perf_counter() - started >= budget:
        record["stopped_by_budget"] = True
        return record, 0.0, None
    main = replace(options, triage_readers=[])
    try:
        stage = load_stage(main, backend)
    except (OpenbookError, ValueError, RuntimeError, OSError) as error:  # the triage answers stand and are written
        return record, 0.0, f"loading the main stage: {error}"
    seconds_before = stage.model_seconds
    record["readers"] = [reader.name for reader in stage.readers]
    record["model_path"] = getattr(stage.backend, "model_path", main.model)
    completion = order_completion(options, stage.backend, ensemble)
    record["context_coverage"] = options.context_coverage if completion is not None else None
    retrieval, count_tokens = retrieval_for(main), token_counter(stage.backend, stage.readers)
    own_contexts: dict[int, list[RetrievedContext]] = {}
    pace: dict[str, list[float]] = {"context": [], "orders": []} if completion is not None else {"context": []}
    failure = None
    with meter("escalating", len(hardest), ("questions",), enabled=options.progress) as m:
        for position, (_, i) in enumerate(hardest):
            elapsed = time.perf_counter() - started
            if elapsed + min(mean_pace(seconds) for seconds in pace.values()) >= budget:  # no kind fits any more
                record["stopped_by_budget"] = True
                break
            result = results[i]
            try:
                if i not in own_contexts:  # a batch's retrieval counts in the elapsed time, not in one question's pace
                    coming = [j for _, j in hardest[position : position + ESCALATION_RETRIEVAL_BATCH]]
                    found = retrieve_contexts([results[j].question for j in coming], retrieval, main, count_tokens)
                    own_contexts.update(zip(coming, found))
                triage = triage_reading(completion, result)
                coverage = (
                    None
                    if triage is None
                    else max(
                        question_coverage(result.question, packed_texts(c.hits, c.context)) for c in own_contexts[i]
                    )
                )
                kind = "orders" if coverage is not None and coverage < options.context_coverage else "context"
                if kind == "orders" and orders_read(len(LETTERS), completion.read, len(result.question.options)) == 0:
                    continue  # its triage reading saw every order already, and its context is off the question
                if time.perf_counter() - started + mean_pace(pace[kind]) >= budget:
                    record["stopped_by_budget"] = True
                    continue  # a cheaper kind may still fit
                began = time.perf_counter()
                if kind == "orders":
                    outputs, decided_by = read_remaining_orders(
                        completion, stage.backend, result, triage, options.share_prefix, priors.get(triage.reader)
                    )
                    every_context = result.contexts
                else:
                    more = read_contexts(
                        stage.readers, stage.backend, result.question, own_contexts[i], options.share_prefix
                    )
                    outputs = [*result.outputs, *more]
                    decided_by = outputs if ensemble is not None or options.average_stages else more
                    every_context = [*result.contexts, *own_contexts[i]]
                prediction = combine(result.question, decided_by, every_context, ensemble)
            except (ValueError, RuntimeError, OpenbookError) as error:
                failure = f"escalating question {result.question.id!r}: {error}"
                break
            results[i] = replace(
                result, prediction=prediction, outputs=outputs, contexts=every_context, context_coverage=coverage
            )
            if on_result is not None:
                on_result(results[i])
            pace[kind].append(time.perf_counter() - began)
            record["escalated"] = int(record["escalated"]) + 1
            record["read_without_context"] = int(record["read_without_context"]) + (kind == "orders")
            m.advance(completed=int(record["escalated"]), questions=1)
    record["seconds_per_escalated_question"] = mean_pace([t for seconds in pace.values() for t in seconds])
    record["seconds_per_question_read"] = {kind: mean_pace(seconds) for kind, seconds in pace.items()}
    return record, stage.model_seconds - seconds_before, failure
