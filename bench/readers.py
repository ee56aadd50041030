"""Benchmark the LLM readers: MAP@3 and seconds/question, no context vs BM25 context, letter vs
yes/no vs debiased letter (k = 1, 3, 5), and shared-prefix vs naive scoring.

    python bench/readers.py                                   # 100 questions per exam, qwen2.5-coder-1.5b
    python bench/readers.py --questions 20 --model smollm2-135m-instruct   # a quick look

Quality comes from one pass per (exam, context) in which all readers share each question's prefix
(one `PromptReaders` over the four prompt readers), so every reader sees exactly the same context.
Each pass is a one-stage run of `run_exam` into bench/out/readers/<model>/<exam>-<context>/: it logs
its answers as it goes, and running the bench again resumes a stopped pass (same settings) instead
of starting over. Speed per reader is measured separately, each reader alone on the first `--timed`
questions. Shared vs naive: the yes/no reader on `--timed` questions with and without KV-cache
reuse, same backend, side by side.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from common import OUT, full_index, markdown_table, plan_contexts, sample_exam
from openbook.answer import AnswerOptions
from openbook.backends import load_backend
from openbook.backends.base import model_token_counter
from openbook.ensemble import rank
from openbook.evaluate.run import run_exam
from openbook.metrics import score_rankings
from openbook.readers import LetterReader, PromptReaders, YesNoReader, read_question
from openbook.runlog import PREDICTIONS_FILE, read_records

# the readers of one quality pass; their outputs are named letter, letter-rot3, letter-rot5, yesno
READER_CONFIGS = [
    ("letter", dict(rotations=1)),
    ("letter", dict(rotations=3)),
    ("letter", dict(rotations=5)),
    ("yesno", {}),
]
N_CTX = 4096


def make_readers(backend):
    return [LetterReader(backend, **kw) if kind == "letter" else YesNoReader(backend) for kind, kw in READER_CONFIGS]


def quality_pass(questions, backend, options: AnswerOptions):
    """All readers in one pass, logged to `options.out` and resumed from it; per-reader scores over
    every logged question, and the run (None when every question was answered before)."""
    outcome = run_exam(
        options, questions=questions, backend=backend, readers=[PromptReaders(backend, make_readers(backend))]
    )
    if outcome.run.failure is not None:
        sys.exit(f"{options.out}: {outcome.run.failure}")
    if outcome.answered_before:
        print(f"  resumed: {outcome.answered_before} questions already in {options.out}", file=sys.stderr)
    wanted = {q.id for q in questions}
    records = [r for r in read_records(options.out / PREDICTIONS_FILE) if r["id"] in wanted]
    per_reader = {
        name: score_rankings([(rank(r["readers"][name]), r["answer"]) for r in records])
        for name in records[0]["readers"]
    }
    return per_reader, (outcome.run if outcome.run.results else None)


def timed_reader(questions, backend, reader, contexts, share_prefix=True):
    started = time.perf_counter()
    outputs = [read_question([reader], backend, q, c, share_prefix)[0] for q, c in zip(questions, contexts)]
    return (time.perf_counter() - started) / len(questions), outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    parser.add_argument("--exams", nargs="+", default=["llmse-stem-1k", "arc-challenge-val"])
    parser.add_argument("--questions", type=int, default=100)
    parser.add_argument("--timed", type=int, default=10, help="questions for the per-reader speed runs")
    parser.add_argument("--context-tokens", type=int, default=1000)
    parser.add_argument("--passages", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--index", type=Path, default=None, help="index to read context from (default: the full index)")
    parser.add_argument(
        "--sections", nargs="+", default=["quality", "speed", "prefix"], choices=["quality", "speed", "prefix"]
    )
    args = parser.parse_args()

    index = args.index or full_index()
    backend = load_backend("llama.cpp", args.model, n_ctx=N_CTX, n_threads=args.threads)
    count_tokens = model_token_counter(backend)
    quality_rows, speed_rows, prefix_rows = [], [], []
    for exam in args.exams:
        questions = sample_exam(exam, args.questions)
        for label, budget in (("none", 0), ("BM25", args.context_tokens)):  # the cheap pass first
            options = AnswerOptions(
                out=OUT / "readers" / args.model / f"{exam}-{label}",
                resume=True,
                model=args.model,
                n_ctx=N_CTX,
                threads=args.threads,
                index=index,
                context_tokens=budget,
                passages=args.passages,
                retrieval=["bm25"],
                triage_readers=["none"],
            )
            contexts = [found[0].context for found in plan_contexts(questions, options, count_tokens)]
            tokens = np.mean([c.tokens for c in contexts])
            timed, timed_contexts = questions[: args.timed], contexts[: args.timed]
            if "quality" in args.sections:
                print(f"[{exam}] context={label}: {len(questions)} questions, all readers…", file=sys.stderr)
                run_scores, run = quality_pass(questions, backend, options)
                for name, scores in run_scores.items():
                    quality_rows.append(
                        [exam, label, name, scores.count, f"{scores.map_at_3:.4f}", f"{scores.accuracy:.4f}"]
                    )
                    print("quality", quality_rows[-1], file=sys.stderr, flush=True)
                if run is not None:
                    speed_rows.append(
                        [
                            exam,
                            label,
                            "all four, one shared pass",
                            f"{tokens:.0f}",
                            f"{run.seconds.per_question:.2f} (overhead {run.seconds.overhead_fraction:.1%})",
                        ]
                    )
            if "speed" in args.sections:
                for reader in make_readers(backend):
                    seconds, _ = timed_reader(timed, backend, reader, timed_contexts)
                    speed_rows.append([exam, label, reader.name, f"{tokens:.0f}", f"{seconds:.2f}"])
                    print("speed", speed_rows[-1], file=sys.stderr, flush=True)
            if "prefix" in args.sections and label == "BM25":
                reader = YesNoReader(backend)
                shared_s, shared = timed_reader(timed, backend, reader, timed_contexts, share_prefix=True)
                naive_s, naive = timed_reader(timed, backend, reader, timed_contexts, share_prefix=False)
                diff = max(
                    abs(a.probabilities[k] - b.probabilities[k]) for a, b in zip(shared, naive) for k in a.probabilities
                )
                prefix_rows.append(
                    [
                        exam,
                        "yesno",
                        len(timed),
                        f"{naive_s:.2f}",
                        f"{shared_s:.2f}",
                        f"{naive_s / shared_s:.2f}x",
                        f"{diff:.1e}",
                    ]
                )
                print("prefix", prefix_rows[-1], file=sys.stderr, flush=True)

    print(
        f"\nmodel {args.model}, {args.questions} questions per exam (seeded sample), "
        f"context budget {args.context_tokens} tokens from {args.passages} BM25 passages of {index}\n"
    )
    print(markdown_table(["exam", "context", "reader", "questions", "MAP@3", "accuracy"], quality_rows))
    print(f"\nseconds/question, each reader alone on the first {args.timed} questions\n")
    print(markdown_table(["exam", "context", "reader", "mean context tokens", "s/question"], speed_rows))
    print("\nshared-prefix vs naive (every option from scratch), side by side\n")
    print(
        markdown_table(["exam", "reader", "questions", "naive s/q", "shared s/q", "speed-up", "max |Δp|"], prefix_rows)
    )


if __name__ == "__main__":
    main()
