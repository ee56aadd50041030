"""Which triage pass, how much context in the main stage, who decides a re-read question, and
whether to route re-reads by context coverage: the cascade replayed over recorded readings
(bench/experiments/replay.py: every step the replay shares with a real run is the library's).

    python bench/readers.py --sections quality                # records the no-context readers
    python bench/experiments/ensemble.py --encoder DIR        # records the main-stage members
    python bench/experiments/letter_prior.py                  # records 5 option orders per question
    python bench/experiments/triage.py [--budgets 10] [--main letter@bm25 letter@bm25-500]
    python bench/experiments/triage.py --coverage 0 0.5 --main letter@bm25-500
    python bench/experiments/triage.py --runs RUN…            # real cascade runs, decided both ways

Default: every no-context reader of bench/readers.py (letter in 1, 3 and 5 orders, yes/no) as the
triage pass, and each `--main` member of bench/experiments/ensemble.py (e.g. `letter@bm25`: 1,000
tokens of default-KB context, `letter@bm25-500`: 500) as the main stage, re-read questions decided
by the main readers alone and by the mean of both stages.

`--coverage`: the default cascade (3-order letter triage, both stages deciding) with the last
`--main` member as its context reading, routed as `openbook answer` routes it: a re-read question
reads its context where one packed passage covers at least that share of its prompt with one option,
otherwise the orders the triage left, and the full-order reading decides (0: every re-read reads
context). Coverage comes from the passages the member's run packed; the triage and full-order
readings from bench/experiments/letter_prior.py's recordings. For comparison it also replays the
cascade with no budget (every question re-read) and routing before any reading ("route first":
context alone where covered, all orders elsewhere, no triage pass).

`--runs`: real `openbook eval` cascade runs scored twice from their predictions.jsonl, a question
re-read with context decided by the main readers alone and by the mean of both stages (`decide`
over those outputs); every other question keeps the answer the run logged. The row the run itself
used reproduces its MAP@3.

Both recording benches sample with the same seed, so the default exam is the readers' llmse-stem-1k
sample and arc-challenge-val-100 their arc-challenge-val sample; only questions both recorded are
replayed. Triage passes are planned at the uncontended paces of docs/benchmarks.md, "Reader time";
a main stage at its own run's seconds/question.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import DEFAULT_EXAM, OUT, ROOT, arc_sample, markdown_table  # noqa: E402
from experiments.replay import (  # noqa: E402
    TRIAGE_ORDERS,
    Item,
    Pace,
    alone,
    full_order_output,
    letter_output,
    recorded_coverage,
    recorded_orders,
    replay,
    reread,
)
from openbook.answer.decide import decide  # noqa: E402
from openbook.exam import read_exam  # noqa: E402
from openbook.metrics import score_rankings  # noqa: E402
from openbook.readers.letter import rotation_reader_name  # noqa: E402
from openbook.records import LETTERS, NO_CONTEXT, TRIAGE_SUFFIX, Question, ReaderOutput  # noqa: E402
from openbook.runlog import RUN_FILE, predictions_path, read_records, result_of  # noqa: E402

NONE = f"@{NO_CONTEXT.retrieval}"
# seconds/question of each no-context reader alone, uncontended (docs/benchmarks.md, "Reader time")
TRIAGE_PACE = {"letter@none": 3.0, "letter-rot3@none": 6.3, "letter-rot5@none": 9.1, "yesno@none": 5.5}
TRIAGE = f"{rotation_reader_name(TRIAGE_ORDERS)}{NONE}"  # the default triage reading
FULL = f"{rotation_reader_name(len(LETTERS))}{NONE}"  # the reading a re-read without context ends with
SETS = {  # set name: (bench/readers.py's exam, the exam file)
    "default-exam": ("llmse-stem-1k", DEFAULT_EXAM),
    "arc-challenge-val": ("arc-challenge-val", OUT / "arc-challenge-val-100.csv"),  # common.arc_sample()
}
HEADER = ["set (questions)", "reader or cascade", "MAP@3", "accuracy", "s/question", ""]


def measured_pace(run: Path) -> float:
    return json.loads((run / "metrics.json").read_text())["seconds"]["per_question"]


def member_records(run: Path) -> dict[str, dict]:
    path = run / "predictions.jsonl"
    return {str(r["id"]): r for r in read_records(path)} if path.is_file() else {}


def cascade_rows(label: str, items: list[Item], pace: Pace, budgets: list[float], name: str) -> list[list[str]]:
    rows = []
    for budget in budgets:
        for decided_by, said in (
            ("main stage", "main readers decide"),
            ("mean of both stages", "both stages averaged"),
        ):
            done = replay(items, pace, budget, decided_by)
            rows.append(
                [
                    label,
                    f"cascade {name}, {said}, budget {budget:g} s/q",
                    f"{done.scores.map_at_3:.4f}",
                    f"{done.scores.accuracy:.4f}",
                    f"{done.seconds_per_question:.2f}",
                    f"{done.with_context}/{len(items)} re-read",
                ]
            )
    return rows


def triage_rows(set_name: str, readers_exam: str, exam: Path, mains: list[str], model: str, budgets) -> list[list[str]]:
    """Each no-context reader as the triage of each main member."""
    runs = {name: OUT / "ensemble" / set_name / name for name in mains}
    triage = member_records(OUT / "readers" / model / f"{readers_exam}-none")
    recorded = {name: member_records(run) for name, run in runs.items()}
    questions = [q for q in read_exam(exam) if q.id in triage and all(q.id in r for r in recorded.values())]
    if not questions:
        print(f"{set_name}: no question recorded by both bench/readers.py and every --main member", file=sys.stderr)
        return []
    label = f"{set_name} ({len(questions)})"
    paces = TRIAGE_PACE | {name: measured_pace(run) for name, run in runs.items()}
    rows = []
    readings = {
        name: {q.id: triage[q.id]["readers"][name.removesuffix(NONE)] for q in questions} for name in TRIAGE_PACE
    }
    readings |= {name: {q.id: recorded[name][q.id]["readers"]["letter"] for q in questions} for name in mains}
    for name, by_id in readings.items():
        scores = alone(questions, [ReaderOutput(q.id, name, by_id[q.id]) for q in questions])
        rows.append([label, name, f"{scores.map_at_3:.4f}", f"{scores.accuracy:.4f}", f"{paces[name]:.2f}", ""])
    for main in mains:
        for cheap in TRIAGE_PACE:
            items = [
                Item(
                    q, ReaderOutput(q.id, cheap, readings[cheap][q.id]), ReaderOutput(q.id, main, readings[main][q.id])
                )
                for q in questions
            ]
            rows += cascade_rows(label, items, Pace(paces[cheap], paces[main]), budgets, f"{cheap} → {main}")
    return rows


def routed_rows(set_name: str, exam: Path, run: Path, model: str, budgets, thresholds) -> list[list[str]]:
    """The default cascade replayed on one set at each coverage threshold (see the module's docstring)."""
    entries = recorded_orders(set_name, model)
    records = member_records(run)
    questions = [q for q in read_exam(exam) if q.id in records and q.id in entries]
    if not questions:
        return [[set_name, f"no question recorded by both {run} and bench/experiments/letter_prior.py", "", "", "", ""]]
    items = []
    for q in questions:
        triage = letter_output(entries[q.id], TRIAGE_ORDERS)
        context = ReaderOutput(q.id, run.name, records[q.id]["readers"]["letter"])
        full = full_order_output(entries[q.id], triage)
        items.append(Item(q, triage, context, full, recorded_coverage(records[q.id], q)))
    pace = Pace(TRIAGE_PACE[TRIAGE], measured_pace(run), TRIAGE_PACE[FULL] - TRIAGE_PACE[TRIAGE])
    label = f"{set_name} ({len(items)})"
    rows = []
    for budget in [*budgets, math.inf]:
        for threshold in thresholds:
            done = replay(items, pace, budget, "mean of both stages", threshold)
            rows.append(
                [
                    label,
                    f"cascade {TRIAGE} → {run.name} where coverage ≥ {threshold:g}, else {FULL}; budget {budget:g} s/q",
                    f"{done.scores.map_at_3:.4f}",
                    f"{done.scores.accuracy:.4f}",
                    f"{done.seconds_per_question:.2f}",
                    f"{done.with_context} with context, {done.in_more_orders} in more orders",
                ]
            )
    for threshold in thresholds:  # route first: no triage pass, no budget
        covered = [item.coverage is not None and item.coverage >= threshold for item in items]
        readings = [
            item.context if c else (item.full_orders or letter_output(entries[item.question.id], len(LETTERS)))
            for item, c in zip(items, covered)
        ]
        scores = alone([item.question for item in items], readings)
        seconds = sum(pace.context if c else TRIAGE_PACE[FULL] for c in covered) / len(items)
        rows.append(
            [
                label,
                f"route first: {run.name} alone where coverage ≥ {threshold:g}, else {FULL}",
                f"{scores.map_at_3:.4f}",
                f"{scores.accuracy:.4f}",
                f"{seconds:.2f}",
                "",
            ]
        )
    return rows


def reread_kind(record: dict, question: Question) -> str | None:
    """How a real cascade read a logged question again: None (not at all), "context" or "orders"."""
    if not reread(record):
        return None
    result = result_of(record, question)
    if result.reread is not None and result.reread.kind == "orders":
        return "orders"
    main = [o for o in result.outputs if not o.reader.endswith(TRIAGE_SUFFIX)]
    return "orders" if all(o.reader.endswith(NONE) for o in main) else "context"


def decided_both_ways(run: Path) -> list[list[str]]:
    """A real cascade run scored as the main readers alone and as both stages averaged would decide."""
    settings = json.loads((run / RUN_FILE).read_text())["settings"]
    exam = Path(settings["exam"])
    questions = {q.id: q for q in read_exam(exam if exam.is_absolute() or exam.exists() else ROOT / exam)}
    records = read_records(predictions_path(run))
    kinds = {str(r["id"]): reread_kind(r, questions[str(r["id"])]) for r in records}
    rows = []
    for label, both in (("as logged", None), ("main readers decide", False), ("both stages averaged", True)):
        pairs = []
        for record in records:
            result = result_of(record, questions[str(record["id"])])
            prediction = result.prediction
            if both is not None and kinds[str(record["id"])] == "context":
                deciding = [o for o in result.outputs if both or not o.reader.endswith(TRIAGE_SUFFIX)]
                prediction = decide(result.question, deciding, result.contexts, None)
            pairs.append((prediction.ranking, result.question.answer))
        scores = score_rankings(pairs)
        counts = [sum(k == kind for k in kinds.values()) for kind in ("context", "orders")]
        rows.append(
            [
                str(run),
                label,
                f"{scores.map_at_3:.4f}",
                f"{scores.accuracy:.4f}",
                f"{len(records)}",
                f"{sum(counts)} re-read ({counts[1]} without context)",
            ]
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    parser.add_argument("--budgets", nargs="+", type=float, default=[10.0])
    parser.add_argument("--runs", nargs="+", type=Path, default=None, help="real cascade runs to score both ways")
    parser.add_argument(
        "--main",
        nargs="+",
        default=["letter@bm25", "letter@bm25-500"],
        help="bench/experiments/ensemble.py members to replay as the main stage",
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
        rows = [row for run in args.runs for row in decided_both_ways(run)]
        print(markdown_table(["run", "re-read questions decided by", "MAP@3", "accuracy", "questions", ""], rows))
        return
    arc_sample()
    rows = []
    for set_name, (readers_exam, exam) in SETS.items():
        mains = args.main[-1:] if args.coverage else args.main  # a routed replay reads its context member only
        unfinished = [m for m in mains if not (OUT / "ensemble" / set_name / m / "metrics.json").is_file()]
        if unfinished:  # its pace is not measured yet
            print(
                f"{set_name}: bench/experiments/ensemble.py has not finished {', '.join(unfinished)}", file=sys.stderr
            )
            continue
        if args.coverage:
            rows += routed_rows(
                set_name, exam, OUT / "ensemble" / set_name / mains[0], args.model, args.budgets, args.coverage
            )
        else:
            rows += triage_rows(set_name, readers_exam, exam, mains, args.model, args.budgets)
    print(markdown_table(HEADER, rows))


if __name__ == "__main__":
    main()
