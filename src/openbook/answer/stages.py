"""A stage of the plan made real: its model loaded and its readers built, and reading a batch of
questions with their contexts into reader outputs, in this process or on a pool of actors."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from openbook.answer.plan import ContextPlan, StagePlan
from openbook.answer.pool import LOCAL, ReadingPool, ReadJob, split
from openbook.backends import Backend
from openbook.index.manifest import MANIFEST_FILE
from openbook.readers import EncoderReader, LetterReader, PromptReader, PromptReaders, Reader, YesNoReader
from openbook.records import NO_CONTEXT, Question, ReaderOutput, RetrievedContext
from openbook.retrieve import Retrieval
from openbook.retrieve.context import pack_context
from openbook.retrieve.evidence import select_evidence

# how each prompt reader kind is built for a stage (the encoder needs no language model)
PROMPT_READER_FACTORIES: dict[str, Callable[[Backend, StagePlan], PromptReader]] = {
    "letter": lambda backend, stage: LetterReader(backend, rotations=stage.rotations),
    "yesno": lambda backend, stage: YesNoReader(backend),
}


@dataclass(frozen=True)
class LoadedStage:
    plan: StagePlan
    backend: Backend | None  # the prompt readers' model; None when the stage has none
    readers: tuple[Reader, ...]
    share_prefix: bool = True
    pool: ReadingPool = LOCAL  # where its readings are made

    @property
    def model_seconds(self) -> float:
        """Time its models have spent evaluating so far."""
        return self.pool.model_seconds(self.readers)

    @property
    def model_path(self) -> str | None:
        """The model file its readers read with: the language model's, else the encoder's; None when
        nothing is loaded."""
        return self.readers[0].model_path if self.readers else None

    def count_tokens(self, text: str) -> int:
        """Context budgets are counted in the first reader's model: the language model where there is one."""
        return self.readers[0].count_tokens(text)

    def tokens(self, question: Question, contexts: Sequence[RetrievedContext]) -> int:
        """Tokens reading `question` with each of `contexts` evaluates, over every reader."""
        return sum(reader.tokens(question, c.context) for reader in self.readers for c in contexts)

    def with_orders(self, orders: int) -> LoadedStage:
        """The same stage with its letter reader in `orders` option orders, on the same model (a stage
        the plan reads in `orders_per_question`: prompt readers only)."""
        if orders == self.plan.rotations:
            return self
        assert self.plan.orders_per_question and self.backend is not None
        plan = replace(self.plan, rotations=orders)
        readers = (_prompt_readers(self.backend, plan, self.share_prefix),)
        return LoadedStage(plan, self.backend, readers, self.share_prefix, self.pool)


def load_stage(
    plan: StagePlan, share_prefix: bool, backend: Backend | None = None, pool: ReadingPool = LOCAL
) -> LoadedStage:
    """The stage's model (`backend`, where one is loaded already; else `pool`'s) and readers."""
    readers: list[Reader] = []
    prompt_kinds = [kind for kind in plan.readers if kind in PROMPT_READER_FACTORIES]
    if plan.model is not None and prompt_kinds:
        if backend is None:
            backend = pool.model(plan.model)
        readers.append(_prompt_readers(backend, plan, share_prefix))
    if plan.encoder is not None:
        readers.append(EncoderReader(plan.encoder.model, max_tokens=plan.encoder.tokens, threads=plan.encoder.threads))
    return LoadedStage(plan, backend, tuple(readers), share_prefix, pool)


def _prompt_readers(backend: Backend, plan: StagePlan, share_prefix: bool) -> PromptReaders:
    kinds = [kind for kind in plan.readers if kind in PROMPT_READER_FACTORIES]
    return PromptReaders(backend, [PROMPT_READER_FACTORIES[kind](backend, plan) for kind in kinds], share_prefix)


def open_retrieval(context: ContextPlan | None) -> Retrieval | None:
    """The index a stage retrieves from, opened once per process for the same plan and the same build
    of the index (a session answering question after question keeps it loaded: its BM25 and dense
    parts and its embedder); an index built again in place is opened again."""
    if context is None:
        return None
    manifest = context.index / MANIFEST_FILE
    return _opened(context, manifest.stat().st_mtime_ns if manifest.is_file() else None)


@functools.lru_cache(maxsize=4)
def _opened(context: ContextPlan, built: int | None) -> Retrieval:
    return Retrieval(context.index, candidates=context.candidates, dense_engine=context.dense_engine)


def retrieve_contexts(
    questions: Sequence[Question],
    retrieval: Retrieval | None,
    context: ContextPlan | None,
    count_tokens: Callable[[str], int],
) -> list[list[RetrievedContext]]:
    """Per question, one packed context per retrieval pipeline (several: readers ensemble over them);
    `count_tokens` measures the budget in the tokens of the model that reads it."""
    if retrieval is None or context is None:
        return [[NO_CONTEXT] for _ in questions]
    per_pipeline = []
    for label in context.retrieval:
        spec = retrieval.resolve(label)
        hit_lists = retrieval.search(questions, spec, context.passages)
        if context.evidence == "sentences":  # scored by their words: the embedder's cosine costs ~150x more
            packed = [select_evidence(q, hits, context.tokens, count_tokens) for q, hits in zip(questions, hit_lists)]
        else:
            packed = [pack_context(hits, context.tokens, count_tokens) for hits in hit_lists]
        per_pipeline.append([RetrievedContext(spec.label(), hits, c) for hits, c in zip(hit_lists, packed)])
    return [list(contexts) for contexts in zip(*per_pipeline)]


@dataclass(frozen=True)
class StageReading:
    """Every reader of a stage on every context of some questions, as the jobs a pool makes: each
    reader and context slot over the questions cut into the pool's width."""

    stage: LoadedStage
    questions: Sequence[Question]
    contexts_per_question: Sequence[Sequence[RetrievedContext]]

    def jobs(self) -> list[ReadJob]:
        parts = split(len(self.questions), self.stage.pool.width)
        return [
            ReadJob(reader, [self.questions[i] for i in part], [self.contexts_per_question[i][k].context for i in part])
            for k in range(len(self.contexts_per_question[0]))
            for reader in self.stage.readers
            for part in parts
        ]

    def outputs(self, read: Sequence[list[list[ReaderOutput]]]) -> list[list[ReaderOutput]]:
        """Per question, the outputs of `read` (its jobs' in order). With several contexts each output
        is named reader@pipeline; every output takes the stage's suffix."""
        outputs: list[list[ReaderOutput]] = [[] for _ in self.questions]
        parts = split(len(self.questions), self.stage.pool.width)
        done = iter(read)
        for k in range(len(self.contexts_per_question[0])):
            for _ in self.stage.readers:
                for part in parts:
                    for i, question_outputs in zip(part, next(done)):
                        retrieved = self.contexts_per_question[i]
                        for output in question_outputs:
                            name = f"{output.reader}@{retrieved[k].retrieval}" if len(retrieved) > 1 else output.reader
                            outputs[i].append(replace(output, reader=name + self.stage.plan.output_suffix))
        return outputs


def read_stage(
    stage: LoadedStage, questions: Sequence[Question], contexts_per_question: Sequence[Sequence[RetrievedContext]]
) -> list[list[ReaderOutput]]:
    """Every reader of the stage on every context of every question, side by side where its pool reads
    several jobs at once."""
    reading = StageReading(stage, questions, contexts_per_question)
    return reading.outputs(stage.pool.read(reading.jobs()))
