"""`openbook show RUN`, `openbook compare RUN_A RUN_B` and `openbook report RUN...`: a finished run in a
few tables, two runs of the same questions compared answer by answer, and an HTML report of either."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from openbook.cli.common import reports_errors, results
from openbook.errors import ConfigError
from openbook.evaluate.review import RunFolder, RunSummary, StageScore, compare, summarize
from openbook.records import LETTERS

RunArgument = Annotated[Path, typer.Argument(help="A run folder (the --out of `openbook answer` or `eval`).")]
SHOWN_IDS = 12  # question ids listed per kind of change


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def summary_table(summary: RunSummary) -> Table:
    table = Table("measure", "value", title=str(summary.path))
    used = summary.budget_used
    for measure, value in (
        ("questions", f"{summary.questions} ({summary.answered} with answers)"),
        ("MAP@3", _score(summary.map3)),
        ("accuracy", _score(summary.accuracy)),
        ("seconds per question", f"{summary.seconds_per_question:.2f}"),
        ("time / budget", "no budget" if used is None else f"{used:.3f} of {summary.budget_seconds:,.0f} s"),
        ("model", summary.model or "-"),
        ("openbook", str(summary.versions.get("openbook", "-"))),
    ):
        table.add_row(measure, value)
    return table


def stages_table(stages: dict[str, StageScore]) -> Table:
    table = Table("decided by", "questions", "MAP@3", title="the cascade's routing")
    for stage, score in stages.items():
        table.add_row(stage, str(score.questions), _score(score.map3))
    return table


def letters_table(summary: RunSummary) -> Table:
    table = Table("", *LETTERS, title="first answers per letter (position bias)")
    table.add_row("predicted", *(str(summary.predicted_letters[letter]) for letter in LETTERS))
    if summary.answered:
        table.add_row("gold", *(str(summary.gold_letters[letter]) for letter in LETTERS))
    return table


@reports_errors
def show(run: RunArgument) -> None:
    """Print a finished run's summary: scores, time against its budget, routing, letter distribution."""
    summary = summarize(RunFolder.read(run))
    for table in (summary_table(summary), stages_table(summary.stages), letters_table(summary)):
        results.print(table)


@reports_errors
def compare_runs(run_a: RunArgument, run_b: RunArgument) -> None:
    """Compare two runs of the same questions: the paired MAP@3 difference (B - A) with its standard
    error, and the questions that changed."""
    a, b = RunFolder.read(run_a), RunFolder.read(run_b)
    found = compare(a, b)
    table = Table("measure", str(run_a), str(run_b), title="B - A: " + found.describe())
    table.add_row("MAP@3 (shared questions)", f"{found.map3_a:.3f}", f"{found.map3_b:.3f}")
    summaries = summarize(a), summarize(b)
    table.add_row("seconds per question", *(f"{s.seconds_per_question:.2f}" for s in summaries))
    table.add_row("time / budget", *("-" if s.budget_used is None else f"{s.budget_used:.3f}" for s in summaries))
    results.print(table)
    for label, ids in (
        ("better in B", found.better),
        ("worse in B", found.worse),
        ("first answer changed", found.top_changed),
    ):
        listed = ", ".join(ids[:SHOWN_IDS]) + (f" … (+{len(ids) - SHOWN_IDS})" if len(ids) > SHOWN_IDS else "")
        results.print(f"{label}: {len(ids)}" + (f" ({listed})" if ids else ""), highlight=False)
    if found.only_in_one:
        results.print(f"answered by one run only: {found.only_in_one}", highlight=False)


@reports_errors
def report(
    runs: Annotated[list[Path], typer.Argument(help="Run folders; with several, each is compared with the first.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write (self-contained).")] = Path(
        "report.html"
    ),
) -> None:
    """Write one self-contained HTML report of one run or a comparison of several: headline, reliability,
    coverage, position bias, routing, time, per-subject scores and every question with its evidence."""
    from openbook.evaluate.html import write_report

    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; name the HTML file to write")
    written = write_report([RunFolder.read(run) for run in runs], out)
    results.print(f"wrote {written}", highlight=False)
