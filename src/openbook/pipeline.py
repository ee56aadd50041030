"""The path a question takes: exam -> retrieve -> pack context -> read -> ensemble -> prediction.

`answer_exam` runs it for a whole exam: retrieval batched across questions, then reading question by
question, every reader served by one evaluation of the question's shared prefix. The files a run
leaves are written by `openbook.evaluate.report.write_run`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from openbook.backends import Backend, load_backend
from openbook.ensemble import average_probabilities, rank
from openbook.progress import meter
from openbook.readers import LetterReader, Reader, ReaderOutput, YesNoReader, read_question
from openbook.retrieve import AUTO, Retrieval
from openbook.retrieve.context import Context, pack_context
from openbook.types import Hit, Prediction, Question

DEFAULT_MODEL = "qwen2.5-coder-1.5b-instruct"


@dataclass
class AnswerOptions:
    """Everything `openbook answer` / `eval` can be told (CLI > [answer] table of a config > here)."""

    exam: Path | None = None
    index: Path | None = None
    out: Path | None = None
    model: str = DEFAULT_MODEL
    backend: str = "llama.cpp"
    readers: list[str] = field(default_factory=lambda: ["letter"])
    rotations: int = 1               # letter reader: option orders averaged (permutation debiasing)
    share_prefix: bool = True        # evaluate context + question once per question (KV cache reuse)
    retrieval: list[str] = field(default_factory=lambda: [AUTO])  # one context per pipeline (plan.py grammar)
    candidates: int = 50             # per retriever before fusion or reranking
    dense_engine: str = "matmul"
    passages: int = 8                # retrieved per question, before packing
    context_tokens: int = 1000       # token budget of the packed context; 0 = no context
    n_ctx: int = 2048                # tokens per sequence: context + question + one option listing
    threads: int | None = None
    limit: int | None = None         # answer only the first N questions
    resume: bool = False             # keep the answers a stopped run left in `out`; answer the rest
    progress: bool = True


@dataclass(frozen=True)
class RetrievedContext:
    retrieval: str   # the pipeline that found it ("none" without an index)
    hits: list[Hit]
    context: Context


@dataclass
class QuestionResult:
    question: Question
    prediction: Prediction
    outputs: list[ReaderOutput]  # every reader on every context
    contexts: list[RetrievedContext]


@dataclass
class Run:
    results: list[QuestionResult]
    seconds: dict[str, float]
    settings: dict[str, object]
    failure: str | None = None  # why the run stopped early; `results` holds what was answered before


READER_NAMES = ("letter", "yesno")


def build_readers(names: Sequence[str], backend: Backend, rotations: int) -> list[Reader]:
    readers: list[Reader] = []
    for name in names:
        if name == "letter":
            readers.append(LetterReader(backend, rotations=rotations))
        elif name == "yesno":
            readers.append(YesNoReader(backend))
        else:
            raise ValueError(f"unknown reader {name!r}; choose from {', '.join(READER_NAMES)}")
    return readers


def settings_of(options: AnswerOptions) -> dict[str, object]:
    """The options as run.json records them (paths as text)."""
    return {key: (str(value) if isinstance(value, Path) else value) for key, value in asdict(options).items()}


def retrieve_contexts(questions: Sequence[Question], retrieval: Retrieval | None, options: AnswerOptions,
                      backend: Backend) -> list[list[RetrievedContext]]:
    """Per question, one packed context per retrieval pipeline (several: readers ensemble over them)."""
    if retrieval is None or options.context_tokens <= 0:
        return [[RetrievedContext("none", [], Context("", (), 0))] for _ in questions]

    def count_tokens(text: str) -> int:
        return len(backend.tokenize(text, at_start=False))

    per_pipeline = []
    for text in options.retrieval:
        spec = retrieval.resolve(text)
        hit_lists = retrieval.search(questions, spec, options.passages)
        per_pipeline.append([RetrievedContext(spec.label(), hits, pack_context(hits, options.context_tokens, count_tokens))
                             for hits in hit_lists])
    return [list(contexts) for contexts in zip(*per_pipeline)]


def read_contexts(readers: Sequence[Reader], backend: Backend, question: Question,
                  contexts: Sequence[RetrievedContext], share_prefix: bool) -> list[ReaderOutput]:
    """Every reader on every context; with several contexts each output is named reader@pipeline."""
    outputs = []
    for retrieved in contexts:
        for output in read_question(readers, backend, question, retrieved.context, share_prefix):
            outputs.append(replace(output, reader=f"{output.reader}@{retrieved.retrieval}") if len(contexts) > 1 else output)
    return outputs


def answer_exam(questions: Sequence[Question], options: AnswerOptions, backend: Backend | None = None,
                readers: Sequence[Reader] | None = None, on_result: Callable[[QuestionResult], None] | None = None,
                skip: frozenset[str] = frozenset()) -> Run:
    """Answer `questions` (the first `options.limit`, less those in `skip`: answered by an earlier
    run); `on_result` sees each answer as it comes. A backend or readers already built (benchmarks,
    tests) may be passed in."""
    started = time.perf_counter()
    if options.limit is not None:
        questions = questions[:options.limit]
    questions = [q for q in questions if q.id not in skip]
    backend = backend or load_backend(options.backend, options.model, n_ctx=options.n_ctx, n_threads=options.threads)
    loaded = time.perf_counter()
    readers = readers or build_readers(options.readers, backend, options.rotations)
    retrieval = (Retrieval(options.index, candidates=options.candidates, dense_engine=options.dense_engine)
                 if options.index is not None and options.context_tokens > 0 else None)
    contexts_per_question = retrieve_contexts(questions, retrieval, options, backend)
    retrieved = time.perf_counter()
    model_seconds_before = backend.model_seconds
    results: list[QuestionResult] = []
    failure = None
    with meter("answering", len(questions), ("questions",), enabled=options.progress) as m:
        for question, contexts in zip(questions, contexts_per_question):
            try:
                outputs = read_contexts(readers, backend, question, contexts, options.share_prefix)
            except (ValueError, RuntimeError) as error:  # keep what was answered; the caller reports
                failure = f"question {question.id!r}: {error}"
                break
            probabilities = average_probabilities(outputs)
            prediction = Prediction(question.id, rank(probabilities), probabilities)
            results.append(QuestionResult(question, prediction, outputs, contexts))
            if on_result is not None:
                on_result(results[-1])
            m.advance(completed=len(results), questions=1)
    finished = time.perf_counter()
    model_seconds = backend.model_seconds - model_seconds_before
    reading = finished - retrieved
    seconds = {
        "total": finished - started, "load_model": loaded - started, "retrieve_and_pack": retrieved - loaded,
        "read": reading, "model": model_seconds,
        "per_question": (finished - loaded) / max(len(questions), 1),
        # everything that is not the model evaluating tokens, as a share of answering time
        "overhead_fraction": (finished - loaded - model_seconds) / max(finished - loaded, 1e-9),
    }
    settings = settings_of(options)
    settings["model_path"] = getattr(backend, "model_path", options.model)
    settings["reader_names"] = [reader.name for reader in readers]
    return Run(results=results, seconds=seconds, settings=settings, failure=failure)
