"""Benchmark retrieval of the source passage on llmse-stem-1k: every retriever, query form, fusion
and reranker, on the full corpus and on the embedded default knowledge base.

    python bench/retrieval.py [--questions 999] [--rerank-questions 200]

- full corpus (wiki-2015-core + vital summaries + exam passages, 512-char chunks, bench/out): BM25
  with each query form, and rerankers over its candidates (embedding rerankers on the first
  `--rerank-questions` questions: they embed every candidate on the CPU).
- default KB (`openbook index --dense all-minilm-l6-v2`, runs/default-index): BM25, dense, hybrid
  (RRF and weighted), each query form, and rerankers.
- cross (not by default): a MiniLM cross-encoder trained by `openbook train cross-encoder` on the
  grounded questions after the first `--rerank-questions`, scored on those first questions (all
  rows and grounded rows, grounding judged on the whole exam).
Also prints each index's build time and size (from its manifest and files). Recall@k and MRR are
`openbook eval-retrieval`'s (see openbook/evaluate/retrieval.py for the matching rule).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_INDEX, OUT, full_index, markdown_table, sample_exam  # noqa: E402
from openbook.evaluate.retrieval import RECALL_AT, evaluate_retrieval, grounded_questions  # noqa: E402
from openbook.index.dense import DENSE_DIR, DenseInfo  # noqa: E402
from openbook.index.manifest import Manifest  # noqa: E402
from openbook.retrieve import Retrieval, RetrievalSpec  # noqa: E402
from openbook.train.cross_encoder import train_cross_encoder  # noqa: E402


def folder_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def index_rows(name: str, index: Path) -> list[list[object]]:
    manifest = Manifest.load(index)
    rows = [
        [
            name,
            "BM25 (" + str(manifest.indexes["bm25"]["engine"]) + ")",
            f"{manifest.passages:,}",
            f"{manifest.seconds['total']:.0f}",
            f"{folder_mib(index / 'bm25'):.0f}",
        ]
    ]
    if (index / DENSE_DIR / "dense.json").is_file():
        info = DenseInfo.load(index / DENSE_DIR)
        rows.append(
            [
                name,
                f"dense ({info.model}, fp16)",
                f"{info.passages:,}",
                f"{info.seconds:.0f} ({info.passages / max(info.seconds, 1e-9):.0f} passages/s)",
                f"{folder_mib(index / DENSE_DIR):.0f}",
            ]
        )
    return rows


def recall_rows(
    name: str, index: Path, questions, pipelines: list[str], grounded: frozenset[str]
) -> list[list[object]]:
    retrieval = Retrieval(index, candidates=50)
    scores = evaluate_retrieval(
        questions, retrieval, [RetrievalSpec.parse(p) for p in pipelines], grounded_ids=grounded
    )
    rows = []
    for row in scores:
        rows.append(
            [
                name,
                row.pipeline,
                row.questions,
                *(f"{row.recall[k]:.3f}" for k in RECALL_AT),
                f"{row.mrr:.3f}",
                f"{row.ms_per_question:.1f}",
            ]
        )
        print(rows[-1], file=sys.stderr, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=999)
    parser.add_argument("--rerank-questions", type=int, default=200)
    parser.add_argument(
        "--sections",
        nargs="+",
        default=["full", "full-rerank", "default"],
        choices=["full", "full-rerank", "default", "cross"],
    )
    parser.add_argument(
        "--full-index", type=Path, default=None, help="the full sections' index (default: the full corpus, built once)"
    )
    parser.add_argument(
        "--default-index", type=Path, default=DEFAULT_INDEX, help="the default KB with its dense part (`make demo`)"
    )
    args = parser.parse_args()
    full = args.full_index or (full_index() if {"full", "full-rerank", "cross"} & set(args.sections) else None)
    default_index = args.default_index
    questions = [q for q in sample_exam("llmse-stem-1k", args.questions) if q.extra.get("context", "").strip()]
    subset = questions[: args.rerank_questions]
    grounded = frozenset(q.id for q in grounded_questions(sample_exam("llmse-stem-1k", 999)))
    recall, builds = [], []
    if "full" in args.sections:
        builds += index_rows("full corpus", full)
        recall += recall_rows(
            "full corpus",
            full,
            questions,
            ["bm25", "bm25/per-option", "bm25/both", "bm25+edit", "bm25/both+edit"],
            grounded,
        )
    if "full-rerank" in args.sections:  # embeds every candidate on the CPU: a subset
        recall += recall_rows(
            "full corpus",
            full,
            subset,
            ["bm25/both", "bm25/both+embed-question", "bm25/both+embed-options", "bm25/both+embed"],
            grounded,
        )
    if "cross" in args.sections:  # trained on the questions after the subset, scored on the subset
        model = OUT / "cross-encoder-minilm"
        if not (model / "config.json").is_file():
            held_out = [q for q in questions[args.rerank_questions :] if q.id in grounded]
            summary = train_cross_encoder(held_out, full, model)
            print(f"cross-encoder: {summary}", file=sys.stderr)
        recall += recall_rows(
            "full corpus", full, subset, ["bm25/both", "bm25/both+embed", f"bm25/both+cross:{model}"], grounded
        )
    if "default" not in args.sections:
        pass
    elif (default_index / DENSE_DIR / "dense.json").is_file():
        builds += index_rows("default KB", default_index)
        recall += recall_rows(
            "default KB",
            default_index,
            questions,
            [
                "bm25",
                "bm25/both",
                "dense",
                "dense/per-option",
                "dense/both",
                "hybrid-rrf",
                "hybrid-rrf/both",
                "hybrid-weighted",
                "hybrid-weighted/both",
                "bm25/both+embed",
                "hybrid-rrf/both+embed",
                "hybrid-weighted/both+embed",
            ],
            grounded,
        )
    else:
        print(
            f"no dense default index: run `openbook index --out {default_index} --dense all-minilm-l6-v2`",
            file=sys.stderr,
        )
    print(markdown_table(["index", "kind", "passages", "build s", "size MiB"], builds))
    print()
    print(
        markdown_table(
            ["index", "pipeline", "questions", *(f"recall@{k}" for k in RECALL_AT), "MRR", "ms/question"], recall
        )
    )


if __name__ == "__main__":
    main()
