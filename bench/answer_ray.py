"""`openbook answer --ray` against one process, side by side in one run: the same questions with the
same settings, read in this process (`--threads` all) and on a Ray cluster started here with
`--actors` actors of `--threads // actors` threads each. Prints seconds per question, the answers
that agree, and where the cluster's readings ran.

    python bench/answer_ray.py --index DIR [--questions 16] [--actors 2] [--budget-seconds 1e6]

The default budget is ample, so every candidate is re-read in both runs and the answers can be
compared one by one; give `--budget-per-question 10` to see the default cascade's budget at work
(the answers then differ where the two runs' paces let different re-reads in).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from common import DEFAULT_EXAM, DEFAULT_INDEX, OPENBOOK, OUT, markdown_table

HERE = OUT / "answer-ray"


def run(name: str, exam: Path, args: argparse.Namespace, extra: list[str]) -> dict:
    out = HERE / name
    shutil.rmtree(out, ignore_errors=True)
    command = [*OPENBOOK, "eval", str(exam), "--index", str(args.index), "--out", str(out), "--quiet"]
    command += ["--limit", str(args.questions), "--model", args.model, *args.budget, *extra]
    began = time.perf_counter()
    timed = subprocess.run(
        ["/usr/bin/time", "-f", "%M", *command],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wall = time.perf_counter() - began
    peak_mib = int(timed.stderr.strip().splitlines()[-1]) / 1024  # the command's own process: the driver
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    metrics = json.loads((out / "metrics.json").read_text())
    return {
        "wall": wall,
        "peak_mib": peak_mib,
        "records": records,
        "metrics": metrics,
        "run": json.loads((out / "run.json").read_text()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, default=DEFAULT_INDEX)
    parser.add_argument("--exam", type=Path, default=DEFAULT_EXAM)
    parser.add_argument("--questions", type=int, default=16)
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="in all, on either side")
    parser.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--budget-seconds", default="1e6")
    budget.add_argument("--budget-per-question")
    args = parser.parse_args()
    args.budget = (
        ["--budget-per-question", args.budget_per_question]
        if args.budget_per_question
        else ["--budget-seconds", args.budget_seconds]
    )
    alone = run("one-process", args.exam, args, ["--threads", str(args.threads)])
    per_actor = max(args.threads // args.actors, 1)
    spread = run(
        "ray", args.exam, args, ["--threads", str(per_actor), "--ray", "local", "--ray-actors", str(args.actors)]
    )
    same = sum(
        a["probabilities"] == b["probabilities"] and a.get("reread") == b.get("reread")
        for a, b in zip(alone["records"], spread["records"])
    )
    rows = []
    for name, result, how in (
        ("one process", alone, f"{args.threads} threads"),
        ("Ray, local", spread, f"{args.actors} actors x {per_actor} threads"),
    ):
        metrics, seconds = result["metrics"], result["metrics"]["seconds"]
        cascade = result["run"].get("cascade") or {}
        rows.append(
            [
                name,
                how,
                len(result["records"]),
                f"{metrics['map@3']:.3f}",
                f"{seconds['per_question']:.2f}",
                f"{seconds['load_model']:.1f}",
                f"{result['wall']:.1f}",
                f"{result['peak_mib']:,.0f}",
                cascade.get("reread", "-"),
            ]
        )
    header = [
        "run",
        "readers",
        "questions",
        "MAP@3",
        "s/question",
        "load s",
        "command s",
        "process peak MiB",
        "re-read",
    ]
    print(markdown_table(header, rows))
    print(f"\nanswers identical (probabilities and re-read kind): {same} of {len(alone['records'])}")
    cluster = spread["run"]["cluster"]
    read = cluster["work"]["questions read"]
    print(
        f"cluster: {cluster['nodes']} node(s), questions read per node {read}, actors' peak RSS {cluster['peak_rss_mib']} MiB"
    )


if __name__ == "__main__":
    main()
