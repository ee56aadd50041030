"""The path a question takes: exam -> retrieve -> pack context -> read -> ensemble -> prediction.

`answer_exam` runs it for a whole exam: retrieval batched across questions, then reading question by
question, every reader served by one evaluation of the question's shared prefix. The files a run
leaves are written by `openbook.evaluate.report.write_run`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from openbook.backends import Backend, load_backend
from openbook.ensemble import average_probabilities, rank
from openbook.evaluate.metrics import Scores, score_rankings
from openbook.progress import meter
from openbook.readers import LetterReader, Reader, ReaderOutput, YesNoReader, read_question
from openbook.retrieve import BM25Retriever
from openbook.retrieve.context import Context, joint_query, pack_context
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
    passages: int = 8                # retrieved per question, before packing
    context_tokens: int = 1000       # token budget of the packed context; 0 = no context
    n_ctx: int = 2048                # tokens per sequence: context + question + one option listing
    threads: int | None = None
    limit: int | None = None         # answer only the first N questions
    progress: bool = True


@dataclass
class QuestionResult:
    question: Question
    prediction: Prediction
    outputs: list[ReaderOutput]
    hits: list[Hit]
    context: Context


@dataclass
class Run:
    results: list[QuestionResult]
    seconds: dict[str, float]
    settings: dict[str, object]
    failure: str | None = None  # why the run stopped early; `results` holds what was answered before

    def scores(self) -> Scores | None:
        answered = [(r.prediction.ranking, r.question.answer) for r in self.results if r.question.answer]
        return score_rankings(answered) if answered else None


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


def retrieve_contexts(questions: Sequence[Question], retriever: BM25Retriever | None, options: AnswerOptions,
                      backend: Backend) -> tuple[list[list[Hit]], list[Context]]:
    if retriever is None or options.context_tokens <= 0:
        return [[] for _ in questions], [Context("", (), 0) for _ in questions]
    hit_lists = retriever.search([joint_query(q) for q in questions], options.passages)

    def count_tokens(text: str) -> int:
        return len(backend.tokenize(text, at_start=False))

    contexts = [pack_context(hits, options.context_tokens, count_tokens) for hits in hit_lists]
    return hit_lists, contexts


def answer_exam(questions: Sequence[Question], options: AnswerOptions, backend: Backend | None = None,
                readers: Sequence[Reader] | None = None) -> Run:
    """Answer `questions`; a backend or readers already built (benchmarks, tests) may be passed in."""
    started = time.perf_counter()
    if options.limit is not None:
        questions = questions[:options.limit]
    backend = backend or load_backend(options.backend, options.model, n_ctx=options.n_ctx, n_threads=options.threads)
    loaded = time.perf_counter()
    readers = readers or build_readers(options.readers, backend, options.rotations)
    retriever = BM25Retriever(options.index) if options.index is not None and options.context_tokens > 0 else None
    hit_lists, contexts = retrieve_contexts(questions, retriever, options, backend)
    retrieved = time.perf_counter()
    model_seconds_before = backend.model_seconds
    results: list[QuestionResult] = []
    failure = None
    with meter("answering", len(questions), ("questions",), enabled=options.progress) as m:
        for question, hits, context in zip(questions, hit_lists, contexts):
            try:
                outputs = read_question(readers, backend, question, context, options.share_prefix)
            except (ValueError, RuntimeError) as error:  # keep what was answered; the caller reports
                failure = f"question {question.id!r}: {error}"
                break
            probabilities = average_probabilities(outputs)
            prediction = Prediction(question.id, rank(probabilities), probabilities)
            results.append(QuestionResult(question, prediction, outputs, hits, context))
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
    settings = {key: (str(value) if isinstance(value, Path) else value) for key, value in asdict(options).items()}
    settings["model_path"] = getattr(backend, "model_path", options.model)
    settings["reader_names"] = [reader.name for reader in readers]
    return Run(results=results, seconds=seconds, settings=settings, failure=failure)
