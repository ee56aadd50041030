"""`openbook ensemble fit`: learn how to combine readers (and calibrate confidence) from validation runs;
`openbook ensemble combine`: one submission from whole runs of the same exam."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from openbook.cli.common import reports_errors, results
from openbook.ensemble import METHODS, Ensemble, fit_ensemble, prediction_from, scored_from_runs
from openbook.ensemble.learned import ranking_of
from openbook.errors import OpenbookError
from openbook.exam import read_exam
from openbook.metrics import score_rankings
from openbook.runlog import predictions_path

app = typer.Typer(help="Fit reader ensembles with calibrated confidence.", no_args_is_help=True)


def exam_of(run: Path) -> Path | None:
    """The exam a run's run.json names, None where it names none."""
    run_file = predictions_path(run).parent / "run.json"
    try:
        return Path(json.loads(run_file.read_text())["settings"]["exam"])
    except (OSError, KeyError, TypeError, json.JSONDecodeError):
        return None


def exam_of_runs(runs: list[Path], given: Path | None) -> Path:
    """The one exam all `runs` answered: `given`, else what their run.json files name. Runs of
    different exams are refused: their question ids (Kaggle's 0, 1, …) would join unrelated questions."""
    named = {run: exam_of(run) for run in runs}
    exam = given or named[runs[0]]
    if exam is None:
        raise OpenbookError(
            f"{predictions_path(runs[0]).parent / 'run.json'}: cannot tell which exam the run answered; pass --exam"
        )
    for run, other in named.items():
        if other is not None and not _same_file(other, exam):
            raise OpenbookError(f"{run} answered {other}, not {exam}: combine runs of one exam")
    return exam


def _same_file(a: Path, b: Path) -> bool:
    """By path where both are here, else by name (a run may record a path relative to another folder)."""
    return a.samefile(b) if a.exists() and b.exists() else a.name == b.name


@app.command("fit")
@reports_errors
def fit(
    runs: Annotated[list[Path], typer.Argument(help="Run folders (or predictions.jsonl) of validation questions.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Ensemble JSON to write; use with answer --ensemble.")],
    exam: Annotated[Path | None, typer.Option(help="The exam the runs answered (default: from run.json).")] = None,
    method: Annotated[
        list[str] | None, typer.Option(help=f"Methods to compare ({', '.join(METHODS)}); default all.")
    ] = None,
    folds: Annotated[int, typer.Option(help="Cross-validation folds.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed for the folds and the ranker.")] = 13,
    final: Annotated[
        bool,
        typer.Option(
            "--final",
            help="Each run is one reader, its final answers, named by its "
            "folder: the file then works with `ensemble combine`.",
        ),
    ] = False,
) -> None:
    """Cross-validate mean, weighted and ranker ensembles; save the best, calibrated on held-out folds.

    One run: readers keep their names, so the file works with `openbook answer --ensemble`.
    Several runs: readers are named RUN-FOLDER/READER (for comparing runs offline), or RUN-FOLDER
    with --final."""
    questions = read_exam(exam_of_runs(runs, exam))
    scored = scored_from_runs(runs, questions, final=final)
    ensemble = fit_ensemble(scored, methods=method or METHODS, folds=folds, seed=seed)
    ensemble.save(out)
    table = Table(
        "method",
        "MAP@3",
        "accuracy",
        "NLL",
        "ECE",
        title=f"{folds}-fold cross-validation, "
        f"{ensemble.validation['questions']} questions, readers {', '.join(ensemble.readers)}",
    )
    for name, score in ensemble.validation["cross_validation"].items():
        table.add_row(
            name + (" (chosen)" if name == ensemble.method else ""),
            f"{score['map_at_3']:.4f}",
            f"{score['accuracy']:.4f}",
            f"{score['nll']:.4f}",
            f"{score['ece']:.3f}",
        )
    results.print(table)
    results.print(f"wrote {out}", highlight=False)


@app.command("combine")
@reports_errors
def combine(
    runs: Annotated[list[Path], typer.Argument(help="Run folders (or predictions.jsonl) of the same exam.")],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Folder for submission.csv, predictions.jsonl, run.json (and metrics.json when the exam has answers).",
        ),
    ],
    exam: Annotated[Path | None, typer.Option(help="The exam the runs answered (default: from run.json).")] = None,
    ensemble: Annotated[
        Path | None,
        typer.Option(
            help="From `ensemble fit --final` on validation runs in folders of "
            "the same names (default: the mean of the runs)."
        ),
    ] = None,
) -> None:
    """One submission from whole runs of the same exam (e.g. the default cascade and an encoder run):
    each run's final answers are one reader, named by its folder, averaged or weighed by a fitted
    ensemble. Only the questions every run answered are combined."""
    from openbook.evaluate.report import write_run
    from openbook.records import QuestionResult, ReaderOutput, Run, RunSeconds

    exam_path = exam_of_runs(runs, exam)
    questions = {q.id: q for q in read_exam(exam_path)}
    scored = scored_from_runs(runs, list(questions.values()), final=True)
    if not scored:
        raise OpenbookError(f"no question of {exam_path} was answered by every one of {', '.join(map(str, runs))}")
    names = sorted(scored[0].readers)
    combiner = Ensemble.load(ensemble) if ensemble is not None else Ensemble("mean", names)
    if set(combiner.readers) != set(names):
        raise OpenbookError(
            f"{ensemble} was fitted on runs in folders named {', '.join(sorted(combiner.readers))}; "
            f"these are named {', '.join(names)} (fit it with `ensemble fit --final` on runs named alike)"
        )
    combined = []
    for q in scored:
        probabilities = dict(zip(q.letters, map(float, combiner.probabilities(q))))
        outputs = [ReaderOutput(q.id, name, dict(zip(q.letters, map(float, q.readers[name])))) for name in names]
        combined.append(
            QuestionResult(
                questions[q.id],
                prediction_from(q.id, probabilities, calibrated=ensemble is not None),
                outputs,
                contexts=[],
            )
        )
    settings = {
        "exam": str(exam_path),
        "combined_runs": [str(run) for run in runs],
        "ensemble": str(ensemble) if ensemble is not None else None,
    }
    metrics = write_run(
        Run(combined, RunSeconds(0, 0, 0, 0, 0, 0, 0, 0), {}, tuple(names)), out, {"settings": settings}
    )
    if len(scored) < len(questions):
        results.print(f"[yellow]combined the {len(scored)} of {len(questions)} questions every run answered[/yellow]")
    if metrics:
        table = Table("run", "MAP@3", "accuracy", title=f"{len(scored)} questions of {exam_path.name}")
        for name in names:
            alone = score_rankings((ranking_of(q.letters, q.readers[name]), q.answer) for q in scored if q.answer)
            table.add_row(name, f"{alone.map_at_3:.4f}", f"{alone.accuracy:.4f}")
        table.add_row(f"combined ({combiner.method})", f"{metrics['map@3']:.4f}", f"{metrics['accuracy']:.4f}")
        results.print(table)
    results.print(f"wrote {out / 'submission.csv'}", highlight=False)
