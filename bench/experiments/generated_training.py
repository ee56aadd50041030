"""What generated questions are worth to a trained reader: `openbook train encoder` on N questions
of llmse-6k-dev's training split, with and without the questions `openbook generate` kept, each
model then answering the same held-out questions (paired, with standard errors).

    python bench/experiments/generated_training.py [--generated bench/out/generate/generated.csv]
        [--train-questions 200] [--eval-questions 100] [--index DIR] [--epochs 1]

Training split: llmse-6k-dev less the questions of `openbook train encoder`'s default validation
split (`bench/common.py: reconstructed_6k_validation`) and less the default exam's prompts; its
first N in a seeded order. Held out: the first `--eval-questions` of that validation split
(llmse-6k-dev-val) and arc-challenge-val (seed 2023). Both arms train with the same settings (a
short CPU run by default: 192 tokens per option, 128 of context, one epoch) and read with the
settings they were trained with, one stage, no LLM.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import (
    DEFAULT_EXAM,
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
from openbook.answer import AnswerOptions  # noqa: E402
from openbook.evaluate.review import RunFolder, compare  # noqa: E402
from openbook.exam import read_exam  # noqa: E402

HERE = OUT / "generated-training"
TRAINING = ["--max-tokens", "192", "--context-tokens", "128", "--learning-rate", "1e-4", "--validation-fraction", "0"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generated", type=Path, default=OUT / "generate" / "generated.csv")
    parser.add_argument("--train-questions", type=int, default=200)
    parser.add_argument("--eval-questions", type=int, default=100)
    parser.add_argument("--index", type=Path, default=DEFAULT_INDEX)
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    HERE.mkdir(parents=True, exist_ok=True)
    validation = reconstructed_6k_validation()
    held_out = {
        "llmse-6k-dev-val": write_exam(validation[: args.eval_questions], HERE / "llmse-6k-dev-val.csv"),
        "arc-challenge-val": write_exam(
            sample_exam("arc-challenge-val", args.eval_questions), HERE / "arc-challenge-val.csv"
        ),
    }
    left_out = {q.id for q in validation} | {q.prompt for q in read_exam(DEFAULT_EXAM)}
    pool = [
        q for q in read_exam(SHARED / "exams" / "llmse-6k-dev.csv") if q.id not in left_out and q.prompt not in left_out
    ]
    random.Random(2023).shuffle(pool)
    base = pool[: args.train_questions]
    generated = read_exam(args.generated)
    arms = {
        "split alone": write_exam(base, HERE / f"train-split-{len(base)}.csv"),
        f"split + {len(generated)} generated": write_exam(
            base + generated, HERE / f"train-split-{len(base)}-generated.csv"
        ),
    }
    rows, folders = [], {}
    for name, exam in arms.items():
        model = HERE / ("model-" + exam.stem)
        if not (model / "training.json").is_file():
            subprocess.run(
                [*OPENBOOK, "train", "encoder", str(exam), "--index", str(args.index), "--out", str(model)]
                + ["--epochs", str(args.epochs), *TRAINING],
                check=True,
            )
        for set_name, questions in held_out.items():
            folder = HERE / f"{exam.stem}@{set_name}"
            options = AnswerOptions(
                index=args.index,
                out=folder,
                readers=["encoder"],
                encoder=str(model),
                triage_readers=[],
                retrieval=["bm25"],
                context_tokens=128,
                encoder_tokens=192,
                progress=False,
            )
            metrics = answered_run(replace(options, resume=True), read_exam(questions))
            folders[name, set_name] = folder
            rows.append([name, set_name, f"{metrics['map@3']:.3f}", f"{metrics['accuracy']:.3f}"])
    print(markdown_table(["training", "held out", "MAP@3", "accuracy"], rows))
    print()
    names = list(arms)
    paired = []
    for set_name in held_out:
        result = compare(RunFolder.read(folders[names[0], set_name]), RunFolder.read(folders[names[1], set_name]))
        paired.append([set_name, result.questions, f"{result.difference:+.3f} ± {result.standard_error:.3f}"])
    print(markdown_table(["held out", "questions", f"MAP@3: {names[1]} − {names[0]} (± SE)"], paired))


if __name__ == "__main__":
    main()
