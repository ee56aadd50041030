"""Benchmark exact dense search: openbook's sharded fp16 matmul against FAISS, on the same vectors.

    python bench/dense_search.py [--vectors 1000000] [--dimension 384] [--queries 1000] [--hnsw]

The store holds `--vectors` random unit vectors (seeded) in fp16 shards, written once under
bench/out. Queries are stored vectors plus noise, so each has true near neighbours. Every engine
runs in its own process (so peak memory is its own) over the same fp16 vectors — FAISS gets them
widened to fp32, the numbers the matmul search multiplies — and reports:
- batch: all queries in one call, seconds per query amortised (how `eval`/`answer` search);
- single: one query per call, median latency over `--single` queries, and how much each had to read
  from storage because the page cache no longer held the store (then the disk, not the search, sets
  the latency);
- peak RSS of the process (VmHWM), and how much of it came after the libraries and queries were
  loaded (what the search itself holds), after the lone queries (which run first) and at the end;
- agreement with the matmul search: queries whose top-k (ids, in order) are identical, and recall@k.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT, markdown_table  # noqa: E402
from openbook.index.dense import DENSE_DIR, DenseInfo, ShardedMatmulSearch, open_vector_search
from openbook.index.dense_build import DenseWriter


def make_store(index_dir: Path, vectors: int, dimension: int, shard_rows: int, seed: int = 0) -> None:
    folder = index_dir / DENSE_DIR
    if (folder / "dense.json").is_file() and DenseInfo.load(folder).complete:
        ShardedMatmulSearch(folder).recorded_max_row_norm()  # records the largest row norm where the store lacks it
        return
    print(f"writing {vectors:,} random {dimension}-d vectors to {folder}…", file=sys.stderr)
    info = DenseInfo(
        model="random", dimension=dimension, query_prefix="", passage_prefix="", shard_rows=shard_rows, passages=vectors
    )
    folder.mkdir(parents=True, exist_ok=True)
    info.save(folder)
    writer = DenseWriter(folder, info)
    rng = np.random.default_rng(seed)
    if writer.rows:  # a store is written in one go; one stopped half way is rewritten, same seed, same vectors
        for path in folder.glob("shard-*.f16"):
            path.unlink()
        writer = DenseWriter(folder, info)
    for start in range(0, vectors, 100_000):
        block = rng.standard_normal((min(100_000, vectors - start), dimension), dtype=np.float32)
        writer.add(block / np.linalg.norm(block, axis=1, keepdims=True))
    info.complete = True
    info.save(folder)
    ShardedMatmulSearch(folder).recorded_max_row_norm()  # recorded, as `openbook index` does


def make_queries(index_dir: Path, count: int, seed: int = 1) -> np.ndarray:
    """Stored vectors plus noise, renormalised: each query has a true nearest neighbour."""
    search = open_vector_search(index_dir, "matmul")
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(search.count, size=count, replace=False))
    queries = search.vectors(rows.tolist()) + 0.05 * rng.standard_normal(
        (count, search.info.dimension), dtype=np.float32
    )
    return queries / np.linalg.norm(queries, axis=1, keepdims=True)


def run_engine(index_dir: Path, engine: str, queries_file: Path, k: int, single: int, result_file: Path) -> None:
    """One engine in this process: build/open, batch search, single-query latency, peak RSS."""
    import torch  # noqa: F401  (imported before the baseline, for every engine alike)

    queries = np.load(queries_file)
    baseline = _status_kib("VmRSS:")
    started = time.perf_counter()
    search = open_vector_search(index_dir, engine)
    if engine != "matmul":
        search.search(queries[:1], k)  # FAISS: the index is built or read on open; touch it once
    open_seconds = time.perf_counter() - started
    latencies = []  # lone queries first, so the peak after them is theirs
    read_before = _storage_bytes_read()
    for query in queries[:single]:
        started = time.perf_counter()
        search.search(query[None, :], k)
        latencies.append(time.perf_counter() - started)
    disk_mib = (_storage_bytes_read() - read_before) / 2**20 / single
    single_peak = _status_kib("VmHWM:")
    started = time.perf_counter()
    batch = search.search(queries, k)
    batch_seconds = time.perf_counter() - started
    peak = _status_kib("VmHWM:")
    np.save(result_file.with_suffix(".rows.npy"), batch.rows)
    result_file.write_text(
        json.dumps(
            {
                "open_s": open_seconds,
                "batch_s": batch_seconds,
                "single_ms": 1000 * float(np.median(latencies)),
                "disk_mib": disk_mib,
                "single_peak_kib": single_peak,
                "peak_kib": peak,
                "baseline_kib": baseline,
            }
        )
    )


def _storage_bytes_read() -> int:
    """Bytes this process made the kernel fetch from storage: non-zero when the page cache no longer
    held the store (memory pressure, or a reclaim daemon paging out idle file pages)."""
    return next(
        int(line.split()[1])
        for line in Path("/proc/self/io").read_text().splitlines()
        if line.startswith("read_bytes:")
    )


def _status_kib(field: str) -> int:
    return next(
        int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(field)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vectors", type=int, default=1_000_000)
    parser.add_argument("--dimension", type=int, default=384)
    parser.add_argument("--shard-rows", type=int, default=65536)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--single", type=int, default=20)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--hnsw", action="store_true", help="also FAISS HNSW (its build takes minutes at 1M)")
    parser.add_argument("--engine", help=argparse.SUPPRESS)  # internal: run one engine in this process
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    index_dir = OUT / f"dense-random-{args.vectors}x{args.dimension}" / f"shards-{args.shard_rows}"
    queries_file = index_dir / f"queries-{args.queries}.npy"
    if args.engine:
        run_engine(index_dir, args.engine, queries_file, args.k, args.single, args.result)
        return
    make_store(index_dir, args.vectors, args.dimension, args.shard_rows)
    if not queries_file.exists():
        np.save(queries_file, make_queries(index_dir, args.queries))
    engines = ["matmul", "faiss-flat"] + (["faiss-hnsw"] if args.hnsw else [])
    measured = {}
    for engine in engines:
        print(f"{engine}…", file=sys.stderr, flush=True)
        result = index_dir / f"result-{engine}.json"
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--vectors",
                str(args.vectors),
                "--dimension",
                str(args.dimension),
                "--queries",
                str(args.queries),
                "--single",
                str(args.single),
                "-k",
                str(args.k),
                "--engine",
                engine,
                "--result",
                str(result),
            ],
            check=True,
        )
        measured[engine] = json.loads(result.read_text()) | {"rows": np.load(result.with_suffix(".rows.npy"))}
    reference = measured["matmul"]["rows"]
    table = []
    for engine, m in measured.items():
        identical = float(np.mean([(a == b).all() for a, b in zip(m["rows"], reference)]))
        recall = float(np.mean([len(set(a) & set(b)) / args.k for a, b in zip(m["rows"], reference)]))
        table.append(
            [
                engine,
                f"{m['open_s']:.1f}",
                f"{1000 * m['batch_s'] / args.queries:.2f}",
                f"{m['single_ms']:.1f}",
                f"{m['disk_mib']:,.0f}",
                f"{(m['single_peak_kib'] - m['baseline_kib']) / 1024:,.0f}",
                f"{m['peak_kib'] / 1024:,.0f}",
                f"{(m['peak_kib'] - m['baseline_kib']) / 1024:,.0f}",
                f"{identical:.3f}",
                f"{recall:.4f}",
            ]
        )
    size = sum(p.stat().st_size for p in (index_dir / DENSE_DIR).glob("shard-*.f16"))
    print(
        f"\n{args.vectors:,} vectors × {args.dimension} (fp16 store {size / 2**20:,.0f} MiB in shards of "
        f"{args.shard_rows:,}), {args.queries:,} queries, k={args.k}; matmul blocks of "
        f"{ShardedMatmulSearch.BLOCK_ROWS:,} rows\n"
    )
    print(
        markdown_table(
            [
                "engine",
                "open/build s",
                "batch ms/query",
                "single-query ms (median)",
                "MiB read from disk per single query",
                "lone queries: peak − RSS before open MiB",
                "peak RSS MiB",
                "peak − RSS before open MiB",
                f"identical top-{args.k}",
                f"recall@{args.k} vs matmul",
            ],
            table,
        )
    )


if __name__ == "__main__":
    main()
