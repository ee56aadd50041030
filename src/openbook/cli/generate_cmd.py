"""`openbook generate`: exam questions written by a language model from the index's passages,
filtered, letter-balanced, resumable."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from openbook.backends import load_backend
from openbook.cli.common import options_command, results
from openbook.config import option
from openbook.errors import ConfigError
from openbook.exam import read_exam
from openbook.generate import GenerateSettings, GenerationReport, generate
from openbook.generate.filters import ACCEPTED, ACCEPTED_EASY, REASONS, ReaderChecks
from openbook.generate.sources import source_pool, topic_queries
from openbook.generate.writer import QuestionWriter
from openbook.progress import notice
from openbook.resources import default_exam
from openbook.retrieve import Retrieval

DEFAULT_WRITER = "qwen2.5-coder-1.5b-instruct"


@dataclass(frozen=True)
class GenerateOptions:
    index: Path | None = option(
        None, "Index folder whose passages questions are written from.", flags=("--index", "-i"), required=True
    )
    output: Path | None = option(
        None,
        "Exam file written (Kaggle layout + context, source); beside it OUT.attempts.jsonl, which a rerun resumes from.",
        flags=("--out", "-o"),
        required=True,
    )
    count: int = option(
        100, "Questions the exam file is to hold.", flags=("-n", "--count"), minimum=1, unit="questions"
    )
    model: str = option(
        DEFAULT_WRITER, "The model that writes the questions (a name from `openbook models list` or a .gguf)."
    )
    reader_model: str | None = option(
        None, "The reader that judges them (too easy, key wrong).", shown="the writer's model"
    )
    like: Path | None = option(
        None, "Write from the passages nearest this exam's questions.", shown="the embedded default exam (science)"
    )
    topics: Path | None = option(
        None, "Write from the passages nearest these topics (one per line) instead of --like.", shown="none: --like"
    )
    exclude: list[Path] = option(
        [], "Never write from the passages of these exams' questions (held out for evaluation). Repeat.", shown="none"
    )
    per_query: int = option(5, "Passages taken per question of --like or topic.", minimum=1, unit="passages")
    seed: int = option(0, "Seed of the passage order and of every draft.")
    keep_easy: float = option(
        0.2, "Share of the questions the reader answers without the passage that are kept.", minimum=0.0, maximum=1.0
    )
    temperature: float = option(0.7, "The writer's sampling temperature.", minimum=0.0)
    max_attempts: int | None = option(
        None, "Passages this run tries at most.", minimum=1, unit="passages", shown="until -n"
    )
    n_ctx: int = option(2048, "Context window of the writer and the reader.", minimum=256)
    threads: int | None = option(None, "CPU threads for llama.cpp.", minimum=1, shown="llama.cpp's choice")
    progress: bool = option(True, "Show a progress bar.", negative="--quiet")


def _generate(options: GenerateOptions) -> None:
    """Write multiple-choice questions from passages of the index with a language model (its output held
    to a JSON schema by a grammar, so every draft parses), keep those that pass the filters (each
    rejection counted with its reason), balance the answer letters, and write them as an exam. Run
    the same command again to resume, or with a larger -n to add more."""
    assert options.index is not None and options.output is not None  # required
    if options.like is not None and options.topics is not None:
        raise ConfigError("give --like or --topics, not both")
    retrieval = Retrieval(options.index)
    if options.topics is not None:
        queries, sources = topic_queries(options.topics), f"topics {options.topics}"
    else:
        like = options.like or default_exam()
        queries, sources = read_exam(like), f"like {like.name if options.like is None else like}"
    held_out = [q for path in options.exclude for q in read_exam(path)]
    pool = source_pool(retrieval, queries, options.per_query, held_out, options.seed)
    notice(
        f"{len(pool.passages):,} source passages ({sources}); left out: {pool.excluded} of held-out questions, "
        f"{pool.too_short} too short",
        options.progress,
    )
    reader_model = options.reader_model or options.model
    settings = GenerateSettings(
        count=options.count,
        seed=options.seed,
        keep_easy=options.keep_easy,
        max_attempts=options.max_attempts,
        described={
            "model": options.model,
            "reader_model": reader_model,
            "index": str(options.index),
            "sources": sources,
            "per_query": options.per_query,
            "exclude": [str(path) for path in options.exclude],
            "temperature": options.temperature,
        },
    )
    writer = QuestionWriter(
        options.model, n_ctx=options.n_ctx, threads=options.threads, temperature=options.temperature
    )
    checks = ReaderChecks(load_backend("llama.cpp", reader_model, n_ctx=options.n_ctx, n_threads=options.threads))
    report = generate(settings, pool.passages, writer, checks, options.output, options.progress)
    print_report(report, options.output)


def print_report(report: GenerationReport, out: Path) -> None:
    outcomes = report.outcomes
    table = Table("outcome", "drafts", "share", title=f"{len(report.attempts)} drafts, {report.kept} kept")
    for outcome in (ACCEPTED, ACCEPTED_EASY, *REASONS):
        if outcomes.get(outcome):
            table.add_row(outcome, str(outcomes[outcome]), f"{outcomes[outcome] / len(report.attempts):.1%}")
    results.print(table)
    letters = " ".join(f"{letter} {n}" for letter, n in sorted(report.letters.items()))
    results.print(
        f"{out}: {report.kept} of {report.count} questions; acceptance {report.acceptance:.1%}, "
        f"{report.seconds_per_kept:.1f} s per kept question; answers {letters or '-'}",
        highlight=False,
        soft_wrap=True,
    )
    if report.kept < report.count and report.passages_left == 0:
        results.print("the source passages ran out: raise --per-query, or give more questions (--like) or topics")


generate_command = options_command(GenerateOptions, "generate", _generate, name="generate")
