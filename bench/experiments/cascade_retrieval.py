"""Which retriever should the default cascade read its context from? Measured where it can matter.

    python bench/experiments/cascade_retrieval.py RUN… [--retrieval bm25 --retrieval hybrid-rrf+embed]

Each RUN is a default `openbook eval` run (the cascade) of an exam on the default index. Its
predictions say which questions the cascade re-read. Of those, the retriever decides only the ones
it routes to the context reading (one packed passage holds at least the run's `--context-coverage`
of the prompt with one option: `question_coverage`); every other re-read is the same reading in more
option orders whatever the retriever. So for each run this bench:

1. retrieves and packs every re-read question with each retriever as the main stage does (the plan's
   context, in the model's tokens) and keeps the questions some retriever routes to context;
2. answers those questions with the default cascade once per retriever, every question re-read
   (`--budget-seconds inf`, so the machine's speed cannot change which are), as `run_exam` runs kept
   in bench/out/cascade-retrieval/RUN/RETRIEVER and resumed when present;
3. prints, per run, MAP@3 on those questions per retriever, the paired difference from the first
   retriever (standard error, questions better/worse), and what it changes on the whole exam.

The first retriever's answers are checked against the run's own for the same questions (the triage
pass reads no context, so a default run with that retriever must give the same answers).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import OUT, ROOT, answered_run, markdown_table, plan_contexts, write_exam  # noqa: E402
from experiments.replay import reread  # noqa: E402
from openbook.answer import AnswerOptions  # noqa: E402
from openbook.answer.options import DEFAULT_MODEL  # noqa: E402
from openbook.backends import load_backend  # noqa: E402
from openbook.backends.base import model_token_counter  # noqa: E402
from openbook.exam import read_exam  # noqa: E402
from openbook.metrics import average_precision_at_3  # noqa: E402
from openbook.records import TRIAGE_SUFFIX  # noqa: E402
from openbook.retrieve.context import packed_texts, question_coverage  # noqa: E402
from openbook.runlog import PREDICTIONS_FILE, RUN_FILE, read_records  # noqa: E402


def coverage_by_retriever(questions, options: AnswerOptions, specs: list[str]) -> dict[str, list[float]]:
    backend = load_backend("llama.cpp", options.model, n_ctx=512)  # its tokenizer packs as the main stage does
    count = model_token_counter(backend)
    coverage = {}
    for spec in specs:
        found = plan_contexts(questions, replace(options, retrieval=[spec]), count)
        coverage[spec] = [
            max(question_coverage(q, packed_texts(c.hits, c.context)) for c in contexts)
            for q, contexts in zip(questions, found)
        ]
    return coverage


def compare(run: Path, specs: list[str]) -> list[list[str]]:
    if not (run / RUN_FILE).is_file() or not (run / PREDICTIONS_FILE).is_file():
        raise SystemExit(
            f"{run}: not an `openbook eval` run folder; make one with "
            f"`openbook eval EXAM --index runs/default-index --out {run}`"
        )
    settings = json.loads((run / RUN_FILE).read_text())["settings"]
    records = {str(r["id"]): r for r in read_records(run / PREDICTIONS_FILE)}
    if not any(name.endswith(TRIAGE_SUFFIX) for r in records.values() for name in r["readers"]):
        raise SystemExit(
            f"{run}: not a cascade run (--triage none); this bench compares the default cascade's contexts"
        )
    exam_path = Path(settings["exam"])
    exam = read_exam(exam_path if exam_path.is_absolute() or exam_path.exists() else ROOT / exam_path)
    exam = [q for q in exam if q.id in records]  # the questions the run answered (it may have had a --limit)
    threshold = settings["context_coverage"]
    options = AnswerOptions(
        index=Path(settings["index"]),
        model=settings.get("model", DEFAULT_MODEL),
        context_coverage=threshold,
        budget_seconds=math.inf,
        progress=True,
        resume=True,
    )
    reread_questions = [q for q in exam if reread(records[q.id])]
    coverage = coverage_by_retriever(reread_questions, options, specs)
    routed = {spec: {q.id for q, c in zip(reread_questions, coverage[spec]) if c >= threshold} for spec in specs}
    chosen = [q for q in reread_questions if any(q.id in routed[spec] for spec in specs)]
    if not chosen:
        return [
            [run.name, f"{len(exam)} / {len(reread_questions)}", "no re-read question is routed to context"] + [""] * 7
        ]
    folder = OUT / "cascade-retrieval" / run.name
    subset = write_exam(chosen, folder / "questions.csv")
    answers = {}
    for spec in specs:
        out = folder / spec.replace("/", "_")
        answered_run(replace(options, exam=subset, out=out, retrieval=[spec]), chosen)
        by_id = {str(r["id"]): r for r in read_records(out / PREDICTIONS_FILE)}
        answers[spec] = [by_id[q.id] for q in chosen]
    precision = {
        spec: np.array([average_precision_at_3(r["ranking"], q.answer) for r, q in zip(found, chosen)])
        for spec, found in answers.items()
    }
    first = specs[0]
    same_as_run = sum(records[q.id]["ranking"] == r["ranking"] for q, r in zip(chosen, answers[first]))
    rows = []
    for spec in specs:
        change = precision[spec] - precision[first]
        error = change.std(ddof=1) / math.sqrt(len(change)) if len(change) > 1 else float("nan")
        rows.append(
            [
                run.name,
                f"{len(exam)} / {len(reread_questions)}",
                spec,
                f"{len(routed[spec])}",
                f"{len(chosen)}",
                f"{precision[spec].mean():.3f}",
                "–" if spec == first else f"{change.mean():+.3f} ± {error:.3f}",
                "–" if spec == first else f"{(change > 0).sum()} / {(change < 0).sum()}",
                "–" if spec == first else f"{change.sum() / len(exam):+.4f}",
                f"{same_as_run}/{len(chosen)}" if spec == first else "–",
            ]
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="default `openbook eval` runs (cascades) of exams")
    parser.add_argument("--retrieval", action="append", help="pipelines to compare (the first is the reference)")
    args = parser.parse_args()
    specs = args.retrieval or ["bm25", "hybrid-rrf+embed"]
    rows = [row for run in args.runs for row in compare(run, specs)]
    print(
        markdown_table(
            [
                "run",
                "questions / re-read",
                "retrieval",
                "routed to context",
                "compared",
                "MAP@3 on compared",
                "paired change",
                "better / worse",
                "change on the exam",
                "answers as the run's",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
