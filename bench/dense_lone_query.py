"""Where a lone query's time goes in the sharded matmul search, variants side by side in one process.

    python bench/dense_lone_query.py [--vectors 1000000] [--dimension 384] [--queries 9] [--rounds 3]

Same store as bench/dense_search.py (written there once, seeded). One query per call, the variants
taken in turn for `--rounds` rounds so machine noise falls on all of them alike; each row gives the
median latency over all its calls, the minor page faults per call, and whether its top-k equals the
widened search's (ids, in order) for every query:
- shipped: `ShardedMatmulSearch` as `openbook search` uses it for one query: fp16 scores of every
  row straight from the mapped shards pick the candidates within a proven error bound, and their
  fp32 scores decide (exact);
- widened: the search every batch of queries takes: each block widened to fp32, then multiplied
  (each shard memory-mapped, then unmapped, as shipped);
- mappings kept: widened, but shards stay mapped between queries (no faults after the first call;
  the whole store stays mapped);
- read(): widened, each block read into one reused buffer instead of mapped (the kernel copies from
  the page cache; nothing is mapped at all);
- in RAM: widened, over a copy of the store in the process's own memory (no page cache in the
  way): the floor of the widen-then-multiply design;
- widen only, in RAM: the fp16→fp32 copy of every block and nothing else (memory bandwidth);
- fp16 matvec, in RAM: torch's fp16 matrix-vector product alone, for reference: it sums in fp32
  but rounds each score to fp16, so its top-k alone is not exact.
"""

from __future__ import annotations

import argparse
import mmap
import resource
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT, markdown_table  # noqa: E402
from dense_search import make_queries, make_store  # noqa: E402
from openbook.index.dense import DENSE_DIR, ROW_DTYPE, ShardedMatmulSearch  # noqa: E402


class KeptMappings(ShardedMatmulSearch):
    """Shards mapped once and kept: no page faults after the first query."""

    def blocks(self, block_rows: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        block_rows = block_rows or self.block_rows
        if not hasattr(self, "_kept"):
            self._kept = []
            for path, rows in self.shards:
                self._kept.append(self.map_shard(path, rows)[1])
        offset = 0
        for shard in self._kept:
            for start in range(0, len(shard), block_rows):
                yield offset + start, shard[start : start + block_rows]
            offset += len(shard)


class ReadIntoBuffer(ShardedMatmulSearch):
    """Each block read() into one reused buffer: nothing mapped, no faults, one kernel copy."""

    def blocks(self, block_rows: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        block_rows = block_rows or self.block_rows
        buffer = np.empty((block_rows, self.info.dimension), dtype=ROW_DTYPE)
        raw = memoryview(buffer).cast("B")
        offset = 0
        for path, rows in self.shards:
            with path.open("rb", buffering=0) as handle:
                for start in range(0, rows, block_rows):
                    wanted = min(block_rows, rows - start) * self.row_bytes
                    got = 0
                    while got < wanted:
                        got += handle.readinto(raw[got:wanted]) or _short_read(path)
                    yield offset + start, buffer[: wanted // self.row_bytes]
            offset += rows


class PrefetchNextShard(ShardedMatmulSearch):
    """Shipped, but while one shard is scanned a second thread maps the next and faults it in with
    one madvise(MADV_POPULATE_READ) (ctypes releases the GIL), so page faults overlap the product."""

    def blocks(self, block_rows: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        import ctypes
        from concurrent.futures import ThreadPoolExecutor

        libc = ctypes.CDLL(None, use_errno=True)
        libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]

        def mapped_shard(path: Path, rows: int) -> tuple[mmap.mmap, np.ndarray]:
            mapped, shard = self.map_shard(path, rows)
            libc.madvise(shard.ctypes.data, shard.nbytes, 22)  # MADV_POPULATE_READ
            return mapped, shard

        block_rows = block_rows or self.block_rows
        shards = [(path, rows) for path, rows in self.shards if rows]
        offset = 0
        with ThreadPoolExecutor(1) as pool:
            upcoming = pool.submit(mapped_shard, *shards[0]) if shards else None
            for number in range(len(shards)):
                mapped, shard = upcoming.result()
                upcoming = pool.submit(mapped_shard, *shards[number + 1]) if number + 1 < len(shards) else None
                for start in range(0, len(shard), block_rows):
                    yield offset + start, shard[start : start + block_rows]
                mapped.madvise(mmap.MADV_DONTNEED)
                offset += len(shard)


def _short_read(path: Path) -> int:
    raise EOFError(f"{path}: shorter than its row count")


class InMemory(ShardedMatmulSearch):
    """The blocked search over a copy of the store in anonymous memory."""

    def __init__(self, folder: Path, **settings: object):
        super().__init__(folder, **settings)
        self.store = np.empty((self.count, self.info.dimension), dtype=ROW_DTYPE)
        for first_row, block in ShardedMatmulSearch(folder).blocks():
            self.store[first_row : first_row + len(block)] = block

    def blocks(self, block_rows: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        block_rows = block_rows or self.block_rows
        for start in range(0, len(self.store), block_rows):
            yield start, self.store[start : start + block_rows]


def widen_only(store: np.ndarray, block_rows: int) -> Callable[[np.ndarray], None]:
    widened = torch.empty((block_rows, store.shape[1]), dtype=torch.float32)
    source = torch.from_numpy(store)

    def run(_query: np.ndarray) -> None:
        for start in range(0, len(source), block_rows):
            block = source[start : start + block_rows]
            widened[: len(block)].copy_(block)

    return run


def fp16_matvec(store: np.ndarray, k: int) -> Callable[[np.ndarray], np.ndarray]:
    source = torch.from_numpy(store)

    def run(query: np.ndarray) -> np.ndarray:
        scores = source @ torch.from_numpy(query[0]).half()
        return torch.topk(scores.float(), k).indices.numpy()[None]

    return run


SHIPPED = "shipped: fp16 filter, then exact scores of the candidates"


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vectors", type=int, default=1_000_000)
    parser.add_argument("--dimension", type=int, default=384)
    parser.add_argument("--shard-rows", type=int, default=65536)
    parser.add_argument("--queries", type=int, default=9)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("-k", type=int, default=10)
    args = parser.parse_args()

    index_dir = OUT / f"dense-random-{args.vectors}x{args.dimension}" / f"shards-{args.shard_rows}"
    make_store(index_dir, args.vectors, args.dimension, args.shard_rows)
    folder = index_dir / DENSE_DIR
    queries = make_queries(index_dir, args.queries, seed=7)
    in_memory = InMemory(folder, filter_lone_queries=False)
    widened = dict(filter_lone_queries=False)

    def rows_of(search: ShardedMatmulSearch) -> Callable[[np.ndarray], np.ndarray]:
        return lambda query: search.search(query, args.k).rows

    variants: dict[str, Callable[[np.ndarray], np.ndarray | None]] = {
        SHIPPED: rows_of(ShardedMatmulSearch(folder)),
        "fp16 filter, next shard faulted in by a second thread": rows_of(PrefetchNextShard(folder)),
        "widened (each shard mapped, then unmapped)": rows_of(ShardedMatmulSearch(folder, **widened)),
        "widened, mappings kept between queries": rows_of(KeptMappings(folder, **widened)),
        "widened, read() into a reused buffer": rows_of(ReadIntoBuffer(folder, **widened)),
        "widened, in RAM (the floor of widening)": rows_of(in_memory),
        "widen only, in RAM": widen_only(in_memory.store, ShardedMatmulSearch.BLOCK_ROWS),
        "fp16 matvec, in RAM (inexact)": fp16_matvec(in_memory.store, args.k),
    }
    latencies: dict[str, list[float]] = {name: [] for name in variants}
    faults: dict[str, list[int]] = {name: [] for name in variants}
    found: dict[str, list[np.ndarray | None]] = {name: [] for name in variants}
    for round_number in range(args.rounds):
        print(f"round {round_number + 1}/{args.rounds}…", file=sys.stderr, flush=True)
        for name, run in variants.items():
            for query in queries:
                before, started = minor_faults(), time.perf_counter()
                rows = run(query[None])
                latencies[name].append(time.perf_counter() - started)
                faults[name].append(minor_faults() - before)
                if round_number == 0:
                    found[name].append(rows)
    reference = found["widened (each shard mapped, then unmapped)"]
    table = []
    for name in variants:
        same = (
            "–"
            if found[name][0] is None
            else f"{sum(np.array_equal(a, b) for a, b in zip(found[name], reference))}/{len(reference)}"
        )
        table.append([name, f"{1000 * np.median(latencies[name]):.1f}", f"{np.median(faults[name]):,.0f}", same])
    print(
        f"\n{args.vectors:,} vectors × {args.dimension} (fp16 shards of {args.shard_rows:,}, blocks of "
        f"{ShardedMatmulSearch.BLOCK_ROWS:,}), {args.queries} lone queries × {args.rounds} rounds, "
        f"k={args.k}, torch threads {torch.get_num_threads()}\n"
    )
    print(markdown_table(["variant", "median ms/query", "minor faults/query", f"identical top-{args.k}"], table))


if __name__ == "__main__":
    main()
