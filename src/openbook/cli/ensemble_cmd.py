"""`openbook ensemble fit`: learn how to combine readers (and calibrate confidence) from validation runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from openbook.cli.common import reports_errors, results
from openbook.ensemble import METHODS, fit_ensemble, scored_from_runs
from openbook.errors import OpenbookError
from openbook.exam import read_exam

app = typer.Typer(help="Fit reader ensembles with calibrated confidence.", no_args_is_help=True)


def exam_of(run: Path) -> Path:
    run_file = (run if run.is_dir() else run.parent) / "run.json"
    try:
        return Path(json.loads(run_file.read_text())["settings"]["exam"])
    except (OSError, KeyError, json.JSONDecodeError):
        raise OpenbookError(f"{run_file}: cannot tell which exam the run answered; pass --exam") from None


@app.command("fit")
@reports_errors
def fit(
    runs: Annotated[list[Path], typer.Argument(help="Run folders (or predictions.jsonl) of validation questions.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Ensemble JSON to write; use with answer --ensemble.")],
    exam: Annotated[Path | None, typer.Option(help="The exam the runs answered (default: from run.json).")] = None,
    method: Annotated[list[str] | None, typer.Option(help=f"Methods to compare ({', '.join(METHODS)}); default all.")] = None,
    folds: Annotated[int, typer.Option(help="Cross-validation folds.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed for the folds and the ranker.")] = 13,
) -> None:
    """Cross-validate mean, weighted and ranker ensembles; save the best, calibrated on held-out folds.

    One run: readers keep their names, so the file works with `openbook answer --ensemble`.
    Several runs: readers are named RUN-FOLDER/READER (for comparing runs offline)."""
    questions = read_exam(exam or exam_of(runs[0]))
    scored = scored_from_runs(runs, questions)
    ensemble = fit_ensemble(scored, methods=method or METHODS, folds=folds, seed=seed)
    ensemble.save(out)
    table = Table("method", "MAP@3", "accuracy", "NLL", "ECE", title=f"{folds}-fold cross-validation, "
                  f"{ensemble.validation['questions']} questions, readers {', '.join(ensemble.readers)}")
    for name, score in ensemble.validation["cross_validation"].items():
        table.add_row(name + (" (chosen)" if name == ensemble.method else ""), f"{score['map_at_3']:.4f}",
                      f"{score['accuracy']:.4f}", f"{score['nll']:.4f}", f"{score['ece']:.3f}")
    results.print(table)
    results.print(f"wrote {out}", highlight=False)
