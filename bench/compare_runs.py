"""Compare two runs of the same exam answer by answer: the same ranked letters, and how far apart the
final and per-reader probabilities are. Used to show that a change to the answer path changed no
answer (run both with `--budget-seconds inf`, so the machine's pace cannot change which questions are
re-read).

    python bench/compare_runs.py RUN_A RUN_B [--tolerance 1e-6]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from openbook.runlog import predictions_path, read_records


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs=2, type=Path, help="two run folders (or predictions.jsonl files)")
    parser.add_argument("--tolerance", type=float, default=1e-6, help="largest probability difference allowed")
    args = parser.parse_args()
    first, second = ({str(r["id"]): r for r in read_records(predictions_path(run))} for run in args.runs)
    common = [qid for qid in first if qid in second]
    ranking_differs = [qid for qid in common if first[qid]["ranking"] != second[qid]["ranking"]]
    final = max(
        (
            abs(first[q]["probabilities"][k] - second[q]["probabilities"][k])
            for q in common
            for k in first[q]["probabilities"]
        ),
        default=0.0,
    )
    readers_differ = [q for q in common if set(first[q]["readers"]) != set(second[q]["readers"])]
    per_reader = max(
        (
            abs(p - second[q]["readers"][name][k])
            for q in common
            if q not in readers_differ
            for name, probabilities in first[q]["readers"].items()
            for k, p in probabilities.items()
        ),
        default=0.0,
    )
    table = Table("measure", "value", title=f"{args.runs[0]} vs {args.runs[1]}")
    for measure, value in (
        ("questions in both", f"{len(common)} (only in one: {len(set(first) ^ set(second))})"),
        ("same ranked letters", f"{len(common) - len(ranking_differs)} / {len(common)}"),
        ("same reader outputs (names)", f"{len(common) - len(readers_differ)} / {len(common)}"),
        ("max |final probability diff|", f"{final:.2e}"),
        ("max |reader probability diff|", f"{per_reader:.2e}"),
    ):
        table.add_row(measure, value)
    Console().print(table)
    same = not ranking_differs and not readers_differ and final <= args.tolerance and per_reader <= args.tolerance
    same = same and set(first) == set(second)
    print(
        "IDENTICAL within tolerance"
        if same
        else f"DIFFERENT: rankings {ranking_differs[:10]}, readers {readers_differ[:10]}"
    )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
