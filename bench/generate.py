"""`openbook generate` measured: seconds per kept question, the outcome of every draft by filter,
examples of kept and rejected drafts, and how hard the kept questions are for the default pipeline
beside as many llmse-stem-1k questions, in one run.

    python bench/generate.py [--count 200] [--index DIR] [--model NAME] [--no-eval]

Writes from the passages nearest the default exam's questions (the command's default), never from
those of the held-out exams (llmse-6k-dev's validation questions and arc-challenge-val), into
bench/out/generate/generated.csv; a rerun resumes it. Then answers the kept questions and the same
number of llmse-stem-1k questions (seed 2023) with the default `openbook eval` settings.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
from pathlib import Path

from common import (
    DEFAULT_INDEX,
    OPENBOOK,
    OUT,
    SHARED,
    answered_run,
    markdown_table,
    reconstructed_6k_validation,
    sample_exam,
    write_exam,
)
from openbook.answer import AnswerOptions
from openbook.evaluate.review import RunFolder
from openbook.exam import read_exam
from openbook.generate.filters import ACCEPTED, ACCEPTED_EASY, REASONS
from openbook.generate.run import attempts_path

HERE = OUT / "generate"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200, help="questions to keep")
    parser.add_argument("--index", type=Path, default=DEFAULT_INDEX)
    parser.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    parser.add_argument("--no-eval", action="store_true", help="generate and print the filters only")
    args = parser.parse_args()
    held_out = write_exam(reconstructed_6k_validation(), HERE / "held-out-llmse-6k-val.csv")
    out = HERE / "generated.csv"
    command = [*OPENBOOK, "generate", "--index", str(args.index), "--out", str(out), "-n", str(args.count)]
    command += [
        "--model",
        args.model,
        "--exclude",
        str(held_out),
        "--exclude",
        str(SHARED / "exams" / "arc-challenge-val.csv"),
    ]
    subprocess.run(command, check=True)
    attempts = [json.loads(line) for line in attempts_path(out).read_text().splitlines()[1:]]
    print_filters(attempts)
    print_examples(attempts)
    if not args.no_eval:
        print_hardness(out, args.index)


def print_filters(attempts: list[dict]) -> None:
    kept = [a for a in attempts if a["row"] is not None]
    seconds = sum(a["seconds"] for a in attempts)
    rows = []
    for outcome in (ACCEPTED, ACCEPTED_EASY, *REASONS):
        count = sum(a["outcome"] == outcome for a in attempts)
        rows.append([outcome, count, f"{count / len(attempts):.1%}"])
    print(markdown_table(["outcome (first filter failed)", "drafts", "share"], rows))
    print()
    per_kept = seconds / len(kept) if kept else float("inf")
    print(
        f"{len(attempts)} drafts, {len(kept)} kept ({len(kept) / len(attempts):.1%}); {seconds / len(attempts):.1f} s "
        f"per draft, {per_kept:.1f} s per kept question ({3600 / per_kept:.0f} kept questions/hour)"
    )


def print_examples(attempts: list[dict], kept_shown: int = 20, rejected_shown: int = 10) -> None:
    print("\nkept:")
    for attempt in [a for a in attempts if a["row"] is not None][:kept_shown]:
        row = attempt["row"]
        options = " | ".join(f"{letter}. {row[letter]}" for letter in "ABCDE")
        print(f"- [{row['source']}] {row['prompt']} — {options} — answer {row['answer']} ({attempt['outcome']})")
    print("\nrejected:")
    for attempt in [a for a in attempts if a["row"] is None][:rejected_shown]:
        print(f"- [{attempt['passage']}] {attempt['outcome']}: {' '.join(attempt['reply'].split())[:400]}")


def print_hardness(generated: Path, index: Path) -> None:
    questions = read_exam(generated)
    stem = sample_exam("llmse-stem-1k", len(questions))
    rows = []
    for name, exam in (("generated", questions), ("llmse-stem-1k", stem)):
        folder = HERE / f"eval-{name}"
        metrics = answered_run(AnswerOptions(index=index, out=folder, progress=False), exam)
        scores = list(RunFolder.read(folder).scores().values())
        error = statistics.stdev(scores) / len(scores) ** 0.5 if len(scores) > 1 else 0.0
        rows.append([name, len(exam), f"{metrics['map@3']:.3f} ± {error:.3f}", f"{metrics['accuracy']:.3f}"])
    print()
    print(markdown_table(["exam", "questions", "MAP@3 ± SE", "accuracy"], rows))


if __name__ == "__main__":
    main()
