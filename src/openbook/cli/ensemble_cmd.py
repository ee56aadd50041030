"""`openbook ensemble fit`: learn how to combine readers (and calibrate confidence) from validation runs;
`openbook ensemble combine`: one submission from whole runs of the same exam."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import typer
from rich.table import Table

from openbook.cli.common import options_command, results
from openbook.config import option
from openbook.ensemble import METHODS, Ensemble, fit_ensemble, prediction_from, scored_from_runs
from openbook.ensemble.learned import ENSEMBLE_FILE, ranking_of
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


@dataclass(frozen=True)
class FitOptions:
    runs: list[Path] = option(
        [], "Run folders (or predictions.jsonl) of validation questions.", argument=True, required=True
    )
    out: Path | None = option(
        None,
        f"Folder (created): {ENSEMBLE_FILE}; give the folder to answer/eval --ensemble (or combine --ensemble).",
        flags=("--out", "-o"),
        required=True,
    )
    exam: Path | None = option(None, "The exam the runs answered.", shown="from run.json")
    method: list[str] = option(list(METHODS), f"Methods to compare ({', '.join(METHODS)}). Repeat.")
    folds: int = option(5, "Cross-validation folds.", minimum=2)
    seed: int = option(13, "Seed for the folds and the ranker.")
    final: bool = option(
        False,
        "Each run is one reader, its final answers, named by its folder: the ensemble then works with "
        "`ensemble combine`.",
        negative="--per-reader",
    )


def _fit(options: FitOptions) -> None:
    """Cross-validate mean, weighted and ranker ensembles; save the best, calibrated on held-out folds.

    One run: readers keep their names, so the ensemble works with `openbook answer --ensemble`.
    Several runs: readers are named RUN-FOLDER/READER (for comparing runs offline), or RUN-FOLDER
    with --final."""
    assert options.out is not None  # required
    runs, exam, folds = options.runs, options.exam, options.folds
    questions = read_exam(exam_of_runs(runs, exam))
    scored = scored_from_runs(runs, questions, final=options.final)
    ensemble = fit_ensemble(scored, methods=options.method, folds=folds, seed=options.seed)
    ensemble.save(options.out / ENSEMBLE_FILE)
    table = Table(
        "method",
        "MAP@3",
        "accuracy",
        "NLL",
        "ECE",
        title=f"{folds}-fold cross-validation, "
        f"{ensemble.validation['questions']} questions, readers {', '.join(ensemble.readers)}",
    )
    cross_validation = cast(dict[str, dict[str, float]], ensemble.validation["cross_validation"])
    for name, score in cross_validation.items():
        table.add_row(
            name + (" (chosen)" if name == ensemble.method else ""),
            f"{score['map_at_3']:.4f}",
            f"{score['accuracy']:.4f}",
            f"{score['nll']:.4f}",
            f"{score['ece']:.3f}",
        )
    results.print(table)
    results.print(f"wrote {options.out / ENSEMBLE_FILE}", highlight=False)


@dataclass(frozen=True)
class CombineOptions:
    runs: list[Path] = option([], "Run folders (or predictions.jsonl) of the same exam.", argument=True, required=True)
    out: Path | None = option(
        None,
        "Run folder (created): submission.csv, predictions.jsonl, run.json (and metrics.json when the exam "
        "has answers).",
        flags=("--out", "-o"),
        required=True,
    )
    exam: Path | None = option(None, "The exam the runs answered.", shown="from run.json")
    ensemble: Path | None = option(
        None,
        f"From `ensemble fit --final` on validation runs in folders of the same names: its --out folder (or "
        f"the {ENSEMBLE_FILE} in it).",
        shown="the mean of the runs",
    )


def _combine(options: CombineOptions) -> None:
    """One submission from whole runs of the same exam (e.g. the default cascade and an encoder run):
    each run's final answers are one reader, named by its folder, averaged or weighed by a fitted
    ensemble. Only the questions every run answered are combined."""
    from openbook.evaluate.report import write_run
    from openbook.records import QuestionResult, ReaderOutput, Run, RunSeconds

    assert options.out is not None  # required
    runs, out, ensemble = options.runs, options.out, options.ensemble
    exam_path = exam_of_runs(runs, options.exam)
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


app.command("fit")(options_command(FitOptions, "ensemble-fit", _fit))
app.command("combine")(options_command(CombineOptions, "ensemble-combine", _combine))
