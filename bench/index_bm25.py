"""Benchmark: chunk and BM25-index wiki-2015-core (30.7K articles) with bm25s and tantivy, side by side.

Reports docs/s, passages/s, peak RSS, index size on disk and queries/s for 1,000 llmse-6k-dev
prompts. Each build and each query run is its own process, so peak RSS belongs to that phase alone.

    python bench/index_bm25.py                      # both engines, full corpus (~10 min on 2 cores)
    python bench/index_bm25.py --limit-docs 2000    # a quick look
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CORPUS = SHARED / "corpus" / "wiki-2015-core.wikiextractor.txt.zst"
QUERIES = SHARED / "exams" / "llmse-6k-dev.csv"


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def folder_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def build(engine: str, out: Path, chunk_size: int, limit_docs: int | None) -> dict:
    from openbook.corpus import ChunkSettings
    from openbook.index.build import IndexSettings, build_index

    corpus = CORPUS
    if limit_docs:
        corpus = out.parent / f"first-{limit_docs}.txt"
        if not corpus.exists():
            _write_prefix(CORPUS, corpus, limit_docs)
    started = time.perf_counter()
    manifest = build_index(
        [corpus],
        out,
        IndexSettings(chunk=ChunkSettings(size=chunk_size), bm25_engine=engine),
        show_progress=False,
        overwrite=True,
    )
    seconds = time.perf_counter() - started
    return {
        "documents": manifest.documents,
        "passages": manifest.passages,
        "seconds": seconds,
        "docs_per_s": manifest.documents / seconds,
        "passages_per_s": manifest.passages / seconds,
        "bm25_seconds": manifest.seconds["bm25"],
        "build_peak_rss_mib": peak_rss_mib(),
        "bm25_mib": folder_mib(out / "bm25"),
        "store_mib": (out / "passages.arrow").stat().st_size / 2**20,
    }


def _write_prefix(source: Path, target: Path, documents: int) -> None:
    from openbook.corpus.compression import InputStream

    written = 0
    with InputStream(source) as stream, target.open("wb") as sink:
        for _, line in stream.lines():
            sink.write(line + b"\n")
            if line.strip() == b"</doc>":
                written += 1
                if written == documents:
                    break


def query(out: Path, n_queries: int, k: int) -> dict:
    from openbook.exam import read_exam
    from openbook.retrieve import BM25Retriever

    prompts = [q.prompt for q in read_exam(QUERIES)[:n_queries]]
    loaded = time.perf_counter()
    retriever = BM25Retriever(out)
    load_seconds = time.perf_counter() - loaded
    retriever.search(prompts[:10], k)  # warm-up
    started = time.perf_counter()
    for start in range(0, len(prompts), 100):
        retriever.search(prompts[start : start + 100], k)
    seconds = time.perf_counter() - started
    return {
        "queries": len(prompts),
        "queries_per_s": len(prompts) / seconds,
        "load_seconds": load_seconds,
        "query_peak_rss_mib": peak_rss_mib(),
    }


def run_phase(*args: str) -> dict:
    result = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"phase {args} failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", nargs="+", default=["bm25s", "tantivy"])
    parser.add_argument("--chunk-size", type=int, default=512)
    parser.add_argument("--limit-docs", type=int, default=None)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--work", type=Path, default=None, help="where the indexes go (default: a temp folder)")
    parser.add_argument("--phase", choices=["build", "query"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase == "build":
        print(json.dumps(build(args.engines[0], args.out, args.chunk_size, args.limit_docs)))
        return
    if args.phase == "query":
        print(json.dumps(query(args.out, args.queries, args.k)))
        return

    work = args.work or Path(tempfile.mkdtemp(prefix="openbook-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for engine in args.engines:
        out = work / f"index-{engine}"
        common = ["--engines", engine, "--out", str(out), "--chunk-size", str(args.chunk_size)]
        if args.limit_docs:
            common += ["--limit-docs", str(args.limit_docs)]
        print(f"[{engine}] building…", file=sys.stderr, flush=True)
        built = run_phase("--phase", "build", *common)
        print(f"[{engine}] querying…", file=sys.stderr, flush=True)
        queried = run_phase("--phase", "query", *common, "--queries", str(args.queries), "-k", str(args.k))
        rows.append({"engine": engine, **built, **queried})

    corpus = f"{CORPUS.name}" + (f" (first {args.limit_docs} docs)" if args.limit_docs else "")
    print(
        f"\nBM25 index benchmark: {corpus}, chunks of {args.chunk_size} chars, "
        f"{args.queries} llmse-6k-dev prompts, k={args.k}\n"
    )
    header = (
        "engine",
        "docs",
        "passages",
        "build s",
        "docs/s",
        "passages/s",
        "bm25 step s",
        "build peak RSS MiB",
        "bm25 MiB",
        "store MiB",
        "queries/s",
        "query peak RSS MiB",
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        values = (
            r["engine"],
            f"{r['documents']:,}",
            f"{r['passages']:,}",
            f"{r['seconds']:.0f}",
            f"{r['docs_per_s']:.0f}",
            f"{r['passages_per_s']:.0f}",
            f"{r['bm25_seconds']:.0f}",
            f"{r['build_peak_rss_mib']:.0f}",
            f"{r['bm25_mib']:.0f}",
            f"{r['store_mib']:.0f}",
            f"{r['queries_per_s']:.0f}",
            f"{r['query_peak_rss_mib']:.0f}",
        )
        print("| " + " | ".join(values) + " |")
    if len(rows) == 2:
        a, b = rows
        print(
            f"\nratios {a['engine']}/{b['engine']}: build time {a['seconds'] / b['seconds']:.2f}, "
            f"peak RSS {a['build_peak_rss_mib'] / b['build_peak_rss_mib']:.2f}, "
            f"queries/s {a['queries_per_s'] / b['queries_per_s']:.2f}"
        )


if __name__ == "__main__":
    main()
