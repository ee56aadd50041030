"""Which retriever should the default cascade read its context from? Measured where it can matter.

    python bench/cascade_retrieval.py runs/DEFAULT-RUN... [--retrieval bm25 --retrieval hybrid-rrf+embed]

Each RUN is a default `openbook eval` run (the cascade, as shipped) of an exam on the default index.
Its predictions say which questions the cascade re-read. Of those, the retriever decides only the
ones it routes to the context reading (one packed passage holds at least `--context-coverage` of
the prompt with one option); every other re-read is the same reading in more option orders whatever
the retriever. So for each run this bench:

1. retrieves and packs every re-read question with each retriever (the main stage's 500 tokens, in
   the model's tokens) and keeps the questions some retriever routes to context;
2. answers those questions with the default cascade once per retriever, every question re-read
   (`--budget-seconds inf`, so the machine's speed cannot change which are), as real `answer_exam`
   runs kept in bench/out/cascade-retrieval/RUN/RETRIEVER and resumed when present;
3. prints, per run, MAP@3 on those questions per retriever, the paired difference from the first
   retriever (standard error, questions better/worse), and what it changes on the whole exam.

The first retriever's answers are checked against the run's own for the same questions (the triage
pass reads no context, so a default run with that retriever must give the same answers).
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from common import OUT, markdown_table
from ensemble import run_member, write_exam
from openbook.backends import load_backend
from openbook.backends.base import model_token_counter
from openbook.ensemble.features import read_predictions
from openbook.exam import read_exam
from openbook.metrics import average_precision_at_3
from openbook.pipeline import AnswerOptions, retrieval_for, retrieve_contexts
from openbook.retrieve.context import packed_texts, question_coverage
from triage import re_read


def coverage_by_retriever(questions, options: AnswerOptions, specs: list[str]) -> dict[str, list[float]]:
    backend = load_backend("llama.cpp", options.model, n_ctx=512)  # its tokenizer packs as the main stage does
    count = model_token_counter(backend)
    coverage = {}
    for spec in specs:
        spec_options = replace(options, retrieval=[spec])
        found = retrieve_contexts(questions, retrieval_for(spec_options), spec_options, count)
        coverage[spec] = [question_coverage(q, packed_texts(c[0].hits, c[0].context)) for q, c in zip(questions, found)]
    return coverage


def compare(run: Path, specs: list[str]) -> list[list[str]]:
    if not (run / "run.json").is_file() or not (run / "predictions.jsonl").is_file():
        raise SystemExit(
            f"{run}: not an `openbook eval` run folder; make one with "
            f"`openbook eval EXAM --index runs/default-index --out {run}`"
        )
    settings = json.loads((run / "run.json").read_text())["settings"]
    if not settings.get("cascade"):
        raise SystemExit(
            f"{run}: not a cascade run (--triage none); this bench compares the default cascade's contexts"
        )
    records = {str(r["id"]): r for r in read_predictions(run / "predictions.jsonl")}
    exam = read_exam(Path(settings["exam"]))
    options = AnswerOptions(index=Path(settings["index"]), budget_seconds=math.inf, progress=True, resume=True)
    threshold = settings["context_coverage"]
    re_read_questions = [q for q in exam if re_read(records[q.id])]
    coverage = coverage_by_retriever(re_read_questions, options, specs)
    routed = {spec: {q.id for q, c in zip(re_read_questions, coverage[spec]) if c >= threshold} for spec in specs}
    chosen = [q for q in re_read_questions if any(q.id in routed[spec] for spec in specs)]
    folder = OUT / "cascade-retrieval" / run.name
    subset = write_exam(chosen, folder / "questions.csv")
    answers = {}
    for spec in specs:
        out = folder / spec.replace("/", "_")
        run_member(subset, replace(options, retrieval=[spec]), out, len(chosen))
        by_id = {str(r["id"]): r for r in read_predictions(out / "predictions.jsonl")}
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
                f"{len(exam)} / {len(re_read_questions)}",
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
