"""`openbook answer` and `openbook eval`: retrieve, read, rank; write the submission and details."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from openbook.cli.common import ConfigOption, reports_errors, results
from openbook.config import resolve_options
from openbook.errors import ConfigError, OpenbookError
from openbook.evaluate.report import PredictionLog, write_run
from openbook.exam import read_exam
from openbook.index.dense import check_engine
from openbook.pipeline import (
    AnswerOptions,
    answer_exam,
    backend_extras,
    check_cascade,
    check_counts,
    check_readers,
    resolve_retrievals,
    settings_of,
)
from openbook.progress import console
from openbook.retrieve import AUTO, Retrieval, RetrievalSpec

ExamArg = Annotated[Path | None, typer.Argument(help="Exam CSV/JSONL (id,prompt,A..E[,answer]).", show_default=False)]
IndexOpt = Annotated[
    Path | None, typer.Option("--index", "-i", help="Index folder from `openbook index`; none: no context.")
]
OutOpt = Annotated[
    Path | None, typer.Option("--out", "-o", help="Folder for submission.csv, predictions.jsonl, metrics.json.")
]
ModelOpt = Annotated[str | None, typer.Option(help="Model name (`openbook models list`) or a GGUF path.")]
ReaderOpt = Annotated[
    list[str] | None, typer.Option("--reader", "-r", help="letter, yesno and/or encoder (repeat to ensemble).")
]
EncoderOpt = Annotated[
    str | None, typer.Option(help="The encoder reader's multiple-choice model (`openbook train encoder`).")
]
EncTokOpt = Annotated[int | None, typer.Option(help="Encoder reader: tokens read per option.")]
BackendOpt = Annotated[str | None, typer.Option(help="llama.cpp, transformers or transformers-layered.")]
AdapterOpt = Annotated[str | None, typer.Option(help="transformers: LoRA adapter folder from `openbook train llm`.")]
PackedOpt = Annotated[
    bool | None,
    typer.Option(
        "--packed/--no-packed",
        help="transformers: score a question's options in one sequence with a 4-D attention mask.",
    ),
]
EnsembleOpt = Annotated[
    Path | None, typer.Option(help="Ensemble from `openbook ensemble fit`: weights, ranker, calibration.")
]
TriageOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--triage",
        help="Cascade: the cheap pass's reader(s), which "
        "answer every question before the readers of --reader re-read "
        "the hardest (repeat; none: no cascade).",
    ),
]
TriModelOpt = Annotated[str | None, typer.Option(help="Cascade: the triage pass's model (default: --model).")]
TriCtxOpt = Annotated[int | None, typer.Option(help="Cascade: the triage pass's context budget in tokens.")]
TriRotOpt = Annotated[
    int | None,
    typer.Option(help="Cascade: the triage pass's letter-reader rotations (default 3; 1: the plain, cheaper pass)."),
]
EscMarginOpt = Annotated[
    float | None,
    typer.Option(help="Cascade: re-read only questions whose top-1 minus top-2 probability is below this."),
]
AverageOpt = Annotated[
    bool | None,
    typer.Option(
        "--average-stages/--main-decides",
        help="Cascade: a re-read "
        "question is decided by the mean of both stages (default) or by "
        "the main readers alone (a fitted --ensemble always weighs both).",
    ),
]
CoverageOpt = Annotated[
    float | None,
    typer.Option(
        help="Cascade: a re-read question reads its retrieved context "
        "only when one packed passage holds this share of the "
        "words of its prompt with one of its options (default "
        "0.5); otherwise the letter reader "
        "reads its remaining option orders without context (0: "
        "always context)."
    ),
]
PriorOpt = Annotated[
    bool | None,
    typer.Option(
        "--letter-prior/--no-letter-prior",
        help="Letter readers: after the "
        "first pass, divide each reading by the model's letter prior "
        "fitted over that pass (default off).",
    ),
]
PerQuestionOpt = Annotated[
    float | None, typer.Option(help="Cascade: the budget as seconds per question answered (default 10).")
]
BudgetOpt = Annotated[
    float | None,
    typer.Option(
        help="Cascade: seconds for the whole run; the hardest questions are "
        "re-read first while the measured pace fits (inf: no limit)."
    ),
]
RotOpt = Annotated[int | None, typer.Option(help="Letter reader: cyclic option orders averaged (1-5).")]
ShareOpt = Annotated[
    bool | None, typer.Option("--share-prefix/--no-share-prefix", help="Reuse the context's KV cache across options.")
]
RetrOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--retrieval",
        help="RETRIEVER\\[/QUERY]\\[+RERANKER] (e.g. bm25, hybrid-rrf/both+embed) or auto (the default: "
        "hybrid-rrf+embed where the index has a dense part, else bm25); repeat for one context per pipeline, read and averaged.",
    ),
]
CandOpt = Annotated[int | None, typer.Option(help="Passages per retriever before fusion or reranking.")]
EngineOpt = Annotated[str | None, typer.Option(help="Dense search: matmul (exact), faiss-flat or faiss-hnsw.")]
PassOpt = Annotated[int | None, typer.Option(help="Passages retrieved per question.")]
CtxOpt = Annotated[int | None, typer.Option(help="Token budget of the context (0: none).")]
BatchOpt = Annotated[
    int | None, typer.Option(help="Questions read together (transformers backends batch across them).")
]
NctxOpt = Annotated[int | None, typer.Option(help="Model context window per sequence (prompt + one option listing).")]
ThreadOpt = Annotated[int | None, typer.Option(help="CPU threads (default: all).")]
LimitOpt = Annotated[int | None, typer.Option(help="Answer only the first N questions.")]
ResumeOpt = Annotated[
    bool | None,
    typer.Option(
        "--resume/--no-resume", help="Keep the answers already in --out (a stopped run) and answer only the rest."
    ),
]
ProgOpt = Annotated[bool | None, typer.Option("--progress/--quiet", help="Show a progress bar.")]


def _run(command: str, given: dict[str, object], config: Path | None, need_answers: bool) -> dict[str, object]:
    given["readers"] = given.pop("reader") or None
    given["triage_readers"] = given.pop("triage") or None
    given["retrieval"] = given["retrieval"] or None
    options = resolve_options(AnswerOptions, "answer", config, given)
    if options.exam is None:
        raise ConfigError(f"no exam: pass EXAM (or `exam` in the [answer] table) to `openbook {command}`")
    if options.out is None:
        raise ConfigError("no output folder: pass --out DIR (or `out` in the [answer] table)")
    # mistakes are reported before the model loads
    for text in options.retrieval:
        if text != AUTO:
            RetrievalSpec.parse(text)
    if options.index is not None:
        resolve_retrievals(options.retrieval, Retrieval(options.index))
    check_engine(options.dense_engine)
    check_counts(options)
    check_readers(options)
    check_cascade(options)
    backend_extras(options)
    questions = read_exam(options.exam)
    if need_answers and not any(q.answer for q in questions[: options.limit]):
        raise OpenbookError(
            f"{options.exam}: no answers to evaluate against"
            f"{' in its first ' + str(options.limit) + ' questions' if options.limit else ''}; "
            "use `openbook answer`"
        )
    log = PredictionLog(options.out, settings_of(options), resume=options.resume, refit_first_pass=options.letter_prior)
    earlier = log.earlier(questions[: options.limit])
    if earlier.answered or earlier.first_pass:
        console.print(
            f"resuming: {len(earlier.answered)} questions already answered in {options.out}"
            + (f", {len(earlier.first_pass)} first-pass answers taken up again" if earlier.first_pass else "")
            + f"; {earlier.seconds:.0f} s spent before"
        )
    try:
        run = answer_exam(questions, options, on_result=log.add, earlier=earlier)
    finally:
        log.close()  # what was answered is on disk, whatever stopped the run
    metrics = write_run(run, options.out, log.previous, log.seconds_before)
    if run.failure is not None:
        raise OpenbookError(
            f"stopped at {run.failure}; the {len(run.results)} questions answered before it are saved in {options.out}"
        )
    console.print(
        f"wrote {options.out}/submission.csv and predictions.jsonl ({len(run.results)} questions "
        f"answered now, {len(log.previous)} before; {run.seconds['per_question']:.2f} s/question"
        f"{' over the whole run' if earlier.answered or earlier.first_pass else ''})"
    )
    return metrics


def _shared_options(
    exam: ExamArg = None,
    index: IndexOpt = None,
    out: OutOpt = None,
    model: ModelOpt = None,
    backend: BackendOpt = None,
    adapter: AdapterOpt = None,
    packed: PackedOpt = None,
    reader: ReaderOpt = None,
    encoder: EncoderOpt = None,
    encoder_tokens: EncTokOpt = None,
    ensemble: EnsembleOpt = None,
    triage: TriageOpt = None,
    triage_model: TriModelOpt = None,
    triage_context_tokens: TriCtxOpt = None,
    triage_rotations: TriRotOpt = None,
    escalate_margin: EscMarginOpt = None,
    average_stages: AverageOpt = None,
    context_coverage: CoverageOpt = None,
    letter_prior: PriorOpt = None,
    budget_seconds: BudgetOpt = None,
    budget_per_question: PerQuestionOpt = None,
    rotations: RotOpt = None,
    share_prefix: ShareOpt = None,
    retrieval: RetrOpt = None,
    candidates: CandOpt = None,
    dense_engine: EngineOpt = None,
    passages: PassOpt = None,
    context_tokens: CtxOpt = None,
    n_ctx: NctxOpt = None,
    question_batch: BatchOpt = None,
    threads: ThreadOpt = None,
    limit: LimitOpt = None,
    resume: ResumeOpt = None,
    progress: ProgOpt = None,
    config: ConfigOption = None,
) -> None:
    """The options of `answer` and `eval`: one signature, which typer reads for both commands."""


def _command(
    name: str, need_answers: bool, report: Callable[[dict[str, object]], None], doc: str
) -> Callable[..., None]:
    """A command with `_shared_options`' options that runs the exam and hands the metrics to `report`."""

    def command(**given: object) -> None:
        report(_run(name, given, given["config"], need_answers))  # type: ignore[arg-type]

    command.__signature__ = inspect.signature(_shared_options, eval_str=True)  # type: ignore[attr-defined]
    command.__annotations__ = dict(_shared_options.__annotations__)
    command.__name__ = command.__qualname__ = name
    command.__doc__ = doc
    return reports_errors(command)


def _print_scores(metrics: dict[str, object]) -> None:
    if metrics:
        results.print(
            f"MAP@3 {metrics['map@3']:.4f}  accuracy {metrics['accuracy']:.4f}  ({metrics['count']} questions)",
            highlight=False,
        )


def _print_table(metrics: dict[str, object]) -> None:
    seconds = metrics["seconds"]
    table = Table(
        "exam", "questions", "MAP@3", "accuracy", "ECE", "s/question", "model s", "overhead", title="openbook eval"
    )
    table.add_row(
        str(metrics["settings"]["exam"]),
        str(metrics["count"]),
        f"{metrics['map@3']:.4f}",
        f"{metrics['accuracy']:.4f}",
        f"{metrics['confidence']['ece']:.3f}",
        f"{seconds['per_question']:.2f}",
        f"{seconds['model']:.1f}",
        f"{seconds['overhead_fraction']:.1%}",
    )
    results.print(table)


answer = _command(
    "answer",
    False,
    _print_scores,
    "Answer an exam: retrieve context, read it with the model, write submission.csv and details.",
)
evaluate = _command(
    "eval", True, _print_table, "Answer an exam that has answers and print MAP@3, accuracy and timings as a table."
)
