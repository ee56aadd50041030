"""Does the default run keep its budget on exams of every length, and what does it buy?

Runs the default `openbook eval` (10 s per question of the run) on the dev exams of three lengths
(`common.budget_exams`: the default exam, 200 held-out llmse-6k-dev questions, the held-out ones of
>= 600 characters, arc-challenge-val-100), each into bench/out/budget/<exam>/<config> (resumed where
stopped, read back where complete), and prints per exam and run: MAP@3, seconds per question, the
run's time against its budget, the share of questions read with evidence, the first pass's option
orders, and the paired MAP@3 difference to a reference run of the same questions with its standard
error. A reference is any other run folder beside it (e.g. `today`, made by an earlier commit's
`openbook eval` into bench/out/budget/<exam>/today); the runs are made one after the other, so run
nothing else on the machine meanwhile.

    python bench/budget.py [--questions N] [--reference today] [--index DIR] [--exams NAME ...] [--table-only]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from common import OUT, answered_run, budget_exams, markdown_table, question_characters
from openbook.answer import AnswerOptions
from openbook.evaluate.review import RunFolder, compare, summarize
from openbook.exam import read_exam
from openbook.runlog import RUN_FILE

QUESTIONS = {"default-exam": 100, "llmse-6k-val-200": 100, "llmse-6k-val-long-100": 100, "arc-challenge-val-100": 50}
CONFIG = "default"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, help="per exam (default: 100; 50 of ARC)")
    parser.add_argument("--reference", default="today", help="the run folder each exam's default run is compared to")
    parser.add_argument("--index", type=Path, default=Path("/work/golden/default-index"))
    parser.add_argument("--exams", nargs="*", help="of " + ", ".join(QUESTIONS))
    parser.add_argument("--table-only", action="store_true", help="print the runs there are; run nothing")
    args = parser.parse_args()
    rows = []
    for name, path in budget_exams().items():
        if args.exams and name not in args.exams:
            continue
        count = args.questions or QUESTIONS[name]
        questions = read_exam(path)[:count]
        folder = OUT / "budget" / name
        if not args.table_only:
            answered_run(AnswerOptions(index=args.index, out=folder / CONFIG), questions)
        if not folder.is_dir():
            continue
        chars = statistics.mean(question_characters(q) for q in questions)
        for config in sorted(p.name for p in folder.iterdir() if (p / RUN_FILE).is_file()):
            rows.append(
                [f"{name} ({count}, {chars:.0f} chars)", config, *measures(folder / config, folder / args.reference)]
            )
    header = ["exam", "run", "MAP@3", "s/question", "time / budget", "read with evidence", "first-pass orders"]
    header.append(f"paired vs {args.reference} (± SE)")
    print(markdown_table(header, rows))


def measures(folder: Path, reference: Path) -> list[str]:
    run = RunFolder.read(folder)
    summary = summarize(run)
    cascade = run.run.get("cascade") or {}
    used = summary.budget_used
    with_evidence = sum(any(c.get("passages") for c in r.get("contexts", [])) for r in run.records) / len(run.records)
    orders = cascade.get("first_pass_orders") or {"3": len(run.records)}  # runs before the budget in tokens: 3 each
    paired = "-"
    if folder != reference and (reference / RUN_FILE).is_file():
        paired = compare(RunFolder.read(reference), run).describe()
    return [
        "-" if summary.map3 is None else f"{summary.map3:.3f}",
        f"{summary.seconds_per_question:.2f}",
        "no budget" if used is None else f"{used:.3f}",
        f"{with_evidence:.2f}",
        " ".join(f"{k}:{n}" for k, n in sorted(orders.items())),
        paired,
    ]


if __name__ == "__main__":
    main()
