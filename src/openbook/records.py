"""The records every stage speaks, from a corpus document to a finished run.

They sit at the bottom of the package: every stage imports them and they import no stage. A record is
what a stage decided or measured, frozen once made, so that the next stage (and predictions.jsonl)
can be given the decision instead of the options that led to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

LETTERS = ("A", "B", "C", "D", "E")
TRIAGE_SUFFIX = "@triage"  # names a cascade's first-pass outputs


@dataclass(frozen=True, slots=True)
class Document:
    """One article (or other unit of text) as read from a corpus file."""

    id: str
    title: str
    text: str
    source: str = ""  # the input file it came from


@dataclass(frozen=True, slots=True)
class Passage:
    """A sentence-aligned piece of a document; `id` is stable for the same corpus and settings."""

    id: str
    doc_id: str
    title: str
    text: str
    chunk: int = 0

    def indexed_text(self) -> str:
        """What retrieval sees: the title kept with every passage of its article."""
        return f"{self.title}\n{self.text}" if self.title else self.text

    def in_context(self, text: str | None = None) -> str:
        """The passage as a reader's context shows it: its title, then its text (or the part given)."""
        shown = self.text if text is None else text
        return f"{self.title}: {shown}" if self.title else shown


@dataclass(frozen=True, slots=True)
class Question:
    """A multiple-choice question: 2 to 5 present options keyed by their original letters."""

    id: str
    prompt: str
    options: dict[str, str]
    answer: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def letters(self) -> tuple[str, ...]:
        return tuple(self.options)


@dataclass(frozen=True, slots=True)
class Hit:
    """A retrieved passage with its score and rank (0 = best) for one query."""

    passage: Passage
    score: float
    rank: int
    retriever: str = ""
    row: int = -1  # the passage's row in its index's store (-1: not from a store)


@dataclass(frozen=True, slots=True)
class Prediction:
    """A ranking of a question's letters, best first, with the probabilities behind it and how sure
    the top answer is (calibrated when a fitted ensemble made it)."""

    question_id: str
    ranking: tuple[str, ...]
    probabilities: dict[str, float] = field(default_factory=dict)
    confidence: float | None = None
    calibrated: bool = False


def submission_letters(ranking: Sequence[str]) -> str:
    """The three letters Kaggle expects. Rankings of fewer than three options (2-option questions)
    are padded with absent letters, which can never be correct, so the score is unchanged."""
    letters = list(dict.fromkeys(ranking))[:3]
    for filler in LETTERS:
        if len(letters) == 3:
            break
        if filler not in letters:
            letters.append(filler)
    return " ".join(letters)


@dataclass(frozen=True, slots=True)
class Context:
    """Retrieved passages packed into a reader's token budget: the text a reader is shown."""

    text: str
    passage_ids: tuple[str, ...]  # the passages that went in, whole or in part
    tokens: int


@dataclass(frozen=True, slots=True)
class RetrievedContext:
    """One retrieval pipeline's hits for a question and the context packed from them."""

    retrieval: str  # the pipeline that found it ("none" without an index)
    hits: list[Hit]
    context: Context


NO_CONTEXT = RetrievedContext("none", [], Context("", (), 0))


@dataclass(frozen=True, slots=True)
class OrderReading:
    """What a letter reader saw, before any calibration: for each option order it read (cyclic
    rotations `first_order`, `first_order` + 1, ...), the log-probabilities of the displayed letters,
    normalised over them. Row r, column s: display slot s of rotation `first_order` + r."""

    first_order: int
    logprobs: tuple[tuple[float, ...], ...]


@dataclass(frozen=True, slots=True)
class ReaderOutput:
    """One reader's probabilities for one question's options."""

    question_id: str
    reader: str
    probabilities: dict[str, float]  # original option letter -> probability; sums to 1
    evidence: tuple[str, ...] = ()  # passage ids the reader was given
    prompt_tokens: int = 0  # shared prefix + this reader's continuations
    orders: OrderReading | None = None  # letter readers: the per-order reading behind `probabilities`


RereadKind = Literal["context", "orders"]


@dataclass(frozen=True, slots=True)
class Reread:
    """How a cascade's second stage read a question again: with its own retrieved context, or in the
    letter reader's remaining option orders without context (its context did not cover it)."""

    kind: RereadKind
    coverage: float | None  # the question's coverage by its own retrieved contexts; None: not measured


@dataclass(frozen=True, slots=True)
class QuestionResult:
    """A question answered: the prediction, every reader output and context behind it, and whether
    (and how) a cascade's second stage read it again."""

    question: Question
    prediction: Prediction
    outputs: list[ReaderOutput]  # every reader on every context
    contexts: list[RetrievedContext]
    reread: Reread | None = None
    # the model's seconds on this question: its share (by prompt tokens) of the batch it was read in,
    # plus its re-read; retrieval and loading are the run's, not a question's
    seconds: float = 0.0

    @property
    def stage(self) -> str:
        """Which stage's reading the prediction comes from: the first pass or a re-read."""
        return "first" if self.reread is None else f"reread-{self.reread.kind}"


@dataclass(frozen=True, slots=True)
class CascadeReport:
    """What a cascade's second stage did over a run."""

    candidates: int  # first-pass answers under the re-read margin
    reread: int = 0  # re-read with context or in more orders
    read_without_context: int = 0  # of those, in more orders without context
    stopped_by_budget: bool = False
    budget_seconds: float | None = None  # None: no limit
    readers: tuple[str, ...] = ()  # the second stage's output names (empty: it never loaded)
    model_path: str | None = None
    context_coverage: float | None = None  # the routing threshold, None where every re-read reads context
    seconds_per_reread: float = 0.0
    seconds_per_kind: dict[str, float] = field(default_factory=dict)
    earlier_runs_seconds: float = 0.0
    first_pass: str = ""  # its plan in words, as said at the start
    first_pass_orders: dict[str, int] = field(default_factory=dict)  # questions per number of option orders read
    budget_covers_first_pass: bool = True  # one order per question fitted the budget
    # the pace measured over the run's readings: prompt tokens evaluated, and the wall-clock seconds they took
    paced_tokens: int = 0
    paced_seconds: float = 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.paced_tokens / self.paced_seconds if self.paced_seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class RunSeconds:
    """Where a run's time went; `per_question` is over the whole run, earlier (resumed) parts included."""

    total: float
    load_model: float
    retrieve_and_pack: float
    read: float
    model: float  # models evaluating tokens
    earlier_runs: float
    per_question: float
    overhead_fraction: float  # everything but the models, as a share of answering time


@dataclass(frozen=True, slots=True)
class Run:
    """A finished (or stopped) run over an exam."""

    results: list[QuestionResult]
    seconds: RunSeconds
    model_paths: dict[str, str | None]  # stage name -> the model file it read with (None: never loaded)
    reader_names: tuple[str, ...]  # every output name in the run, first seen first
    cascade: CascadeReport | None = None
    failure: str | None = None  # why the run stopped early; `results` holds what was answered before
    error: Exception | None = None  # what stopped it: a user's mistake (OpenbookError) or a bug
    cluster: dict[str, object] | None = None  # where a pool of Ray actors read it: nodes, actors, questions per node


@dataclass(frozen=True, slots=True)
class EarlierRun:
    """What a resumed run takes over from the runs before it in the same folder."""

    answered: frozenset[str] = frozenset()  # answered for good: not read again
    # first-pass answers taken up again: a cascade's re-read candidates, and re-divided by a letter prior
    first_pass: Sequence[QuestionResult] = ()
    # the `answered` ones' letter readings (reader name, reading): a letter prior is fitted on them too
    readings: Sequence[tuple[str, OrderReading]] = ()
    seconds: float = 0.0  # what the earlier runs spent: a cascade's budget counts it as spent


FRESH_RUN = EarlierRun()  # a run with nothing to take over
