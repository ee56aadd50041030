"""Where does retrieved context help, and where should the cascade's main stage read it?

The default cascade re-reads a hard question with its retrieved context only when one packed passage
holds at least `context_coverage` of the question's words (`question_coverage`); otherwise it reads
the letter reader's remaining option orders without context. This bench shows why and chooses the
threshold without the questions the README reports on:

    python bench/context_coverage.py                     # both sections
    python bench/context_coverage.py --sections held-out # no reader runs: retrieval, packed in Qwen's tokens

`held-out`: the coverage of every exam's questions on the default knowledge base (BM25, 500 tokens
packed in Qwen's tokens, as the main stage packs them), less the reported ones (the default exam,
arc-challenge-val-100). Retrieved Wikipedia context helps the Wikipedia-sourced questions and hurts
ARC's (README, "Readers"), so the threshold is the one that best tells held-out llmse-stem-1k
questions from held-out ARC-Challenge ones (balanced accuracy).

`reported`: on the reported questions, from the recorded readers (`bench/readers.py`: 3 and 5
orders without context; `bench/ensemble.py`: `letter@bm25-500`), MAP@3 per coverage bin of each
reading, to show what the threshold separates. Nothing here is fitted to these questions.
"""

from __future__ import annotations

import argparse
import random

import numpy as np

from common import OUT, ROOT, SHARED, markdown_table
from openbook.backends import load_backend
from openbook.ensemble.features import read_predictions
from openbook.ensemble.learned import ranking_of
from openbook.evaluate.metrics import score_rankings
from openbook.exam import read_exam
from openbook.pipeline import AnswerOptions, retrieval_for, retrieve_contexts
from openbook.retrieve.context import question_coverage
from triage import coverage_of

REPORTED = {"llmse-stem-1k": ROOT / "src/openbook/resources/default-exam.csv",
            "arc-challenge-val": OUT / "arc-challenge-val-100.csv"}
OTHERS = ["arc-easy-val", "openbookqa-val", "sciq-val", "mmlu-stem-val", "llmse-6k-dev"]
THRESHOLDS = [0.3, 0.4, 0.5, 0.6, 0.7]


def held_out(index, model: str, per_exam: int) -> None:
    options = AnswerOptions(index=index, context_tokens=500, progress=False)
    backend = load_backend("llama.cpp", model, n_ctx=512)
    count = lambda text: len(backend.tokenize(text, at_start=False))  # noqa: E731 - the main stage's packing
    retrieval = retrieval_for(options)
    coverage = {}
    for name in [*REPORTED, *OTHERS]:
        reported = {q.prompt for q in read_exam(REPORTED[name])} if name in REPORTED else set()
        questions = [q for q in read_exam(SHARED / "exams" / f"{name}.csv") if q.prompt not in reported]
        if name not in REPORTED:
            questions = random.Random(0).sample(questions, min(per_exam, len(questions)))
        found = retrieve_contexts(questions, retrieval, options, count)
        coverage[name] = np.array([question_coverage(q.prompt, c[0].hits, c[0].context) for q, c in zip(questions, found)])
    rows = [[name, str(len(values)), *(f"{np.percentile(values, p):.2f}" for p in (10, 25, 50, 75, 90)),
             *(f"{np.mean(values >= t):.2f}" for t in THRESHOLDS)] for name, values in coverage.items()]
    print(markdown_table(["held-out questions", "n", "p10", "p25", "median", "p75", "p90",
                          *(f"share ≥ {t:g}" for t in THRESHOLDS)], rows))
    wiki, arc = coverage["llmse-stem-1k"], coverage["arc-challenge-val"]
    grid = np.round(np.arange(0.2, 0.81, 0.05), 2)
    balanced = [(np.mean(wiki >= t) + np.mean(arc < t)) / 2 for t in grid]
    print(markdown_table(["threshold", *(f"{t:g}" for t in grid)],
                         [["balanced accuracy, llmse-stem-1k vs ARC-Challenge", *(f"{b:.3f}" for b in balanced)]]))
    print(f"best threshold: {grid[int(np.argmax(balanced))]:g}")


def reported(model: str) -> None:
    rows = []
    for name, exam in REPORTED.items():
        members = "default-exam" if name == "llmse-stem-1k" else name
        no_context = {r["id"]: r["readers"] for r in read_predictions(OUT / "readers" / model / f"{name}-none" / "predictions.jsonl")}
        context = {r["id"]: r for r in read_predictions(OUT / "ensemble" / members / "letter@bm25-500" / "predictions.jsonl")}
        questions = [q for q in read_exam(exam) if q.id in no_context and q.id in context]
        readings = {
            "3 orders": lambda q: no_context[q.id]["letter-rot3"],
            "5 orders": lambda q: no_context[q.id]["letter-rot5"],
            "BM25 500": lambda q: context[q.id]["readers"]["letter"],
            "mean(3 orders, BM25 500)": lambda q: {k: (no_context[q.id]["letter-rot3"][k] + context[q.id]["readers"]["letter"][k]) / 2
                                                   for k in q.letters},
        }
        covered = {q.id: coverage_of(q.prompt, context[q.id]) for q in questions}
        for low, high in ((0.0, 0.5), (0.5, 1.01)):
            chosen = [q for q in questions if low <= covered[q.id] < high]
            if not chosen:
                continue
            scores = [score_rankings((ranking_of(q.letters, np.array([read(q)[k] for k in q.letters])), q.answer)
                                     for q in chosen).map_at_3 for read in readings.values()]
            rows.append([name, f"[{low:g}, {min(high, 1):g}{']' if high > 1 else ')'}", str(len(chosen)),
                         *(f"{s:.3f}" for s in scores)])
    print(markdown_table(["reported questions", "coverage", "n", *readings], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", default=str(ROOT / "runs/default-index"))
    parser.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    parser.add_argument("--per-exam", type=int, default=300, help="questions sampled from each other exam")
    parser.add_argument("--sections", nargs="+", default=["held-out", "reported"])
    args = parser.parse_args()
    if "held-out" in args.sections:
        held_out(args.index, args.model, args.per_exam)
    if "reported" in args.sections:
        reported(args.model)


if __name__ == "__main__":
    main()
