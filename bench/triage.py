"""Which triage pass, and how much context in the main stage, should the default cascade use?
Replays cascades from recorded outputs: every no-context reader of `bench/readers.py` (letter, 3 and
5 rotations, yes/no) as the triage pass, and a `bench/ensemble.py` member as the main stage:
`letter@bm25` (1,000 tokens of default-KB context) or `letter@bm25-500` (500 tokens).

    python bench/readers.py --sections quality      # writes bench/out/readers/MODEL/EXAM-none
    python bench/ensemble.py --encoder DIR          # writes bench/out/ensemble/SET/letter@bm25, …
    python bench/triage.py [--budgets 10] [--main letter@bm25 letter@bm25-500]
    python bench/triage.py --runs runs/cascade-ctx500 …   # real cascade runs: who decides a re-read question
    python bench/triage.py --coverage 0 0.5 …        # the default cascade, routed by context coverage

`--coverage` replays the default cascade (3-order letter triage, both stages deciding) with the last
`--main` member as its context reading, routed as `openbook answer` routes it: a re-read question
reads its context where one packed passage holds at least that share of its words, otherwise the
two option orders left without context, and the 5-order reading decides (0: every re-read reads
context, the default until session 9). Coverage comes from the passages the member's run packed;
the triage and 5-order readings from bench/letter_prior.py's recordings (`python bench/letter_prior.py`
first); the orders branch is planned at the 5-order pace less the 3-order one. For comparison
it also replays the cascade with no budget (every question re-read) and routing before any reading
(context alone where covered, no triage pass):

    python bench/ensemble.py --encoder DIR --members letter@hybrid-250    # the context reading
    python bench/triage.py --coverage 0.5 --main letter@hybrid-250 --budgets 8 10 12

`--runs` scores real `openbook eval` cascade runs twice from their predictions.jsonl: as the main
readers alone decide a re-read question (`--main-decides`) and as the mean of both stages does (the
default since session 8); a question that was not re-read keeps its triage answer either way, and
one re-read in its remaining option orders (session 9) is decided by that full-order reading either way.

Both benches sample their questions with the same seed, so the default exam is readers' llmse-stem-1k
sample and arc-challenge-val-100 its arc-challenge-val sample; only questions both recorded are
replayed. Triage passes are planned at the uncontended paces below (README, "Readers"), not at the
recorded runs' wall times, which shared the CPU; a main stage at its own run's seconds/question
(those runs had the CPU to themselves).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from common import OUT, ROOT, markdown_table
from ensemble import cascade_rows, recorded_readers
from openbook.ensemble.average import average_probabilities, rank
from openbook.ensemble.features import read_predictions, scored_question
from openbook.ensemble.learned import ranking_of
from openbook.exam import read_exam
from openbook.metrics import score_rankings
from openbook.pipeline import TRIAGE_SUFFIX
from openbook.records import Question, ReaderOutput
from openbook.retrieve.context import question_coverage

# seconds/question of each reader alone, uncontended (bench/readers.py speed section, llmse-stem-1k)
TRIAGE_PACE = {"letter@none": 3.0, "letter-rot3@none": 6.3, "letter-rot5@none": 9.1, "yesno@none": 5.5}
SETS = {
    "default-exam": ("llmse-stem-1k", ROOT / "src/openbook/resources/default-exam.csv"),
    "arc-challenge-val": ("arc-challenge-val", OUT / "arc-challenge-val-100.csv"),
}


# the default cascade's no-context readings in bench/letter_prior.py's recordings: its triage, and the
# full-order reading a re-read question without context ends with
TRIAGE_READING, FULL_READING = "letter-rot3@none", "letter-rot5@none"


def recorded(path):
    return {record["id"]: record["readers"] for record in read_predictions(path)} if path.is_file() else {}


def re_read(record: dict) -> bool:
    """Whether a cascade's recorded question was re-read by its main stage."""
    return any(not name.endswith(TRIAGE_SUFFIX) for name in record["readers"])


def decided_both_ways(run: Path) -> list[list[str]]:
    """A real cascade run scored as the main readers alone and as both stages averaged would decide."""
    records = read_predictions(run / "predictions.jsonl")
    re_read_count = sum(map(re_read, records))
    rows = []
    for label, both in (("main readers decide", False), ("both stages averaged", True)):
        pairs = []
        for record in records:
            outputs = [
                ReaderOutput(str(record["id"]), name, probabilities)
                for name, probabilities in record["readers"].items()
            ]
            main = [o for o in outputs if not o.reader.endswith(TRIAGE_SUFFIX)]
            # the pipeline's rule (escalate): a full-order reading without context (`letter-rot5@none`)
            # holds the triage's letter orders and decides in their place
            full_orders = [o for o in main if o.reader.endswith("@none")]
            if full_orders:
                decided_by = [o for o in outputs if not o.reader.startswith("letter")] + full_orders
            else:
                decided_by = outputs if both or not main else main
            probabilities = average_probabilities(decided_by)
            pairs.append((rank(probabilities), record["answer"]))
        scores = score_rankings(pairs)
        rows.append(
            [
                str(run),
                label,
                f"{scores.map_at_3:.4f}",
                f"{scores.accuracy:.4f}",
                f"{len(records)}",
                f"{re_read_count} re-read",
            ]
        )
    return rows


def recorded_passages(record: dict) -> list[str]:
    """The text of each passage a recorded question's contexts packed."""
    return [p["text"] for c in record["contexts"] for p in c["passages"]]


def coverage_of(question: Question, record: dict) -> float:
    """`question_coverage` of a recorded question against each passage its contexts packed."""
    return question_coverage(question, recorded_passages(record))


def routed_rows(label, scored, coverage, main_stage, pace, budgets, thresholds):
    """The default cascade replayed at each coverage threshold (see the module's docstring); an
    infinite budget re-reads every question."""
    cheap, full = TRIAGE_READING, FULL_READING
    rest = pace[full] - pace[cheap]
    n = len(scored)
    order = sorted(range(n), key=lambda i: float(np.diff(np.sort(scored[i].readers[cheap])[-2:])[0]))
    rows = []
    for budget in budgets:
        for threshold in thresholds:
            spent, final, counts = pace[cheap] * n, [q.readers[cheap] for q in scored], [0, 0]
            for i in order:
                q = scored[i]
                with_context = coverage[q.id] >= threshold
                if not with_context and len(q.letters) <= 3:
                    continue  # the triage read every order
                cost = pace[main_stage] if with_context else rest
                if spent + cost > budget * n:
                    continue  # another kind of re-read may still fit
                spent += cost
                final[i] = (q.readers[cheap] + q.readers[main_stage]) / 2 if with_context else q.readers[full]
                counts[not with_context] += 1
            scores = score_rankings((ranking_of(q.letters, p), q.answer) for q, p in zip(scored, final))
            rows.append(
                [
                    label,
                    f"cascade 3 orders → {main_stage} where coverage ≥ {threshold:g}, else 5 orders; "
                    f"budget {budget:g} s/q",
                    f"{scores.map_at_3:.4f}",
                    f"{scores.accuracy:.4f}",
                    f"{spent / n:.2f}",
                    f"{counts[0]} with context, {counts[1]} in more orders",
                ]
            )
    return rows


def routed_set_rows(set_name: str, exam: Path, run: Path, model: str, budgets, thresholds) -> list[list[str]]:
    """The default cascade replayed on one set: its triage (3 orders) and full-order readings from
    bench/letter_prior.py's recordings, which equal what the pipeline's letter readers read, and the
    context reading (and the coverage it is routed by) from the bench/ensemble.py member `run`."""
    readings = {name: recorded_readers(set_name, name, model) for name in (TRIAGE_READING, FULL_READING)}
    records = {str(r["id"]): r for r in read_predictions(run / "predictions.jsonl")}
    questions = [q for q in read_exam(exam) if q.id in records and all(q.id in r for r in readings.values())]
    if not questions:
        return [[set_name, f"no question recorded by both {run} and bench/letter_prior.py", "", "", "", ""]]
    scored = [
        scored_question(
            q,
            {name: dict(zip(q.letters, r[q.id])) for name, r in readings.items()}
            | {run.name: records[q.id]["readers"]["letter"]},
            "",
        )
        for q in questions
    ]
    pace = TRIAGE_PACE | {run.name: measured_pace(run)}
    coverage = {q.id: coverage_of(q, records[q.id]) for q in questions}
    label = f"{set_name} ({len(scored)})"
    return routed_rows(label, scored, coverage, run.name, pace, [*budgets, math.inf], thresholds) + [
        route_first_row(label, scored, coverage, run.name, pace, threshold) for threshold in thresholds
    ]


def route_first_row(label, scored, coverage, main_stage, pace, threshold):
    """For comparison, routing before any reading, with no budget: a question covered at `threshold`
    is read with its context alone (no triage pass), any other in all option orders."""
    pairs, seconds = [], 0.0
    for q in scored:
        covered = coverage[q.id] >= threshold
        pairs.append((ranking_of(q.letters, q.readers[main_stage] if covered else q.readers[FULL_READING]), q.answer))
        seconds += pace[main_stage] if covered else pace[FULL_READING]
    scores = score_rankings(pairs)
    return [
        label,
        f"route first: {main_stage} alone where coverage ≥ {threshold:g}, else 5 orders",
        f"{scores.map_at_3:.4f}",
        f"{scores.accuracy:.4f}",
        f"{seconds / len(scored):.2f}",
        "",
    ]


def measured_pace(run: Path) -> float:
    return json.loads((run / "metrics.json").read_text())["seconds"]["per_question"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    parser.add_argument("--budgets", nargs="+", type=float, default=[10.0])
    parser.add_argument(
        "--runs",
        nargs="+",
        type=Path,
        default=None,
        help="real cascade runs (openbook eval --out DIR) to score both ways instead",
    )
    parser.add_argument(
        "--main",
        nargs="+",
        default=["letter@bm25", "letter@bm25-500"],
        help="bench/ensemble.py members to replay as the main stage",
    )
    parser.add_argument(
        "--coverage",
        nargs="+",
        type=float,
        default=None,
        help="replay the default cascade routed at these context-coverage thresholds instead, "
        "with the last --main member (e.g. letter@bm25-500) as its context reading",
    )
    args = parser.parse_args()
    if args.runs:
        print(
            markdown_table(
                ["run", "re-read questions decided by", "MAP@3", "accuracy", "questions", ""],
                [row for run in args.runs for row in decided_both_ways(run)],
            )
        )
        return
    rows = []
    for set_name, (readers_exam, exam) in SETS.items():
        # a routed replay reads only its context member (the last --main)
        runs = {name: OUT / "ensemble" / set_name / name for name in (args.main[-1:] if args.coverage else args.main)}
        unfinished = [name for name, run in runs.items() if not (run / "metrics.json").is_file()]
        if unfinished:  # its pace is not measured yet
            print(f"{set_name}: bench/ensemble.py has not finished {', '.join(unfinished)} yet")
            continue
        if args.coverage:
            rows += routed_set_rows(set_name, exam, runs[args.main[-1]], args.model, args.budgets, args.coverage)
            continue
        triage = recorded(OUT / "readers" / args.model / f"{readers_exam}-none" / "predictions.jsonl")
        mains = {name: recorded(run / "predictions.jsonl") for name, run in runs.items()}
        questions = [q for q in read_exam(exam) if q.id in triage and all(q.id in found for found in mains.values())]
        if not questions:
            print(f"{set_name}: no question recorded by every bench yet")
            continue
        pace = TRIAGE_PACE | {name: measured_pace(run) for name, run in runs.items()}
        scored = [
            scored_question(
                q,
                {f"{name}@none": p for name, p in triage[q.id].items()}
                | {name: found[q.id]["letter"] for name, found in mains.items()},
                "",
            )
            for q in questions
        ]
        label = f"{set_name} ({len(scored)})"
        for name in pace:
            alone = score_rankings((ranking_of(q.letters, q.readers[name]), q.answer) for q in scored)
            rows.append([label, name, f"{alone.map_at_3:.4f}", f"{alone.accuracy:.4f}", f"{pace[name]:.2f}", ""])
        for main_stage in mains:
            for cheap in TRIAGE_PACE:
                rows += cascade_rows(label, scored, cheap, main_stage, pace, args.budgets)
    print(markdown_table(["set (questions)", "reader or cascade", "MAP@3", "accuracy", "s/question", ""], rows))


if __name__ == "__main__":
    main()
