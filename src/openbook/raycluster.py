"""Ray, shared by what openbook spreads over a cluster (`index --ray`, `answer --ray`): connecting to
a cluster, and the record of which node did how much of the work."""

from __future__ import annotations

import resource
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from openbook.errors import OpenbookError


@dataclass(frozen=True)
class Worker:
    """Where a piece of work ran: the node, and the worker process's peak resident memory so far."""

    node: str
    peak_rss_mib: float

    @classmethod
    def here(cls) -> Worker:
        import ray

        return cls(
            ray.get_runtime_context().get_node_id()[:12], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        )


@dataclass
class WorkLog:
    """Which node did how much of each stage, and the largest worker of each (an index's
    manifest and a run's run.json record as `cluster`)."""

    address: str
    nodes: int = 0
    work: dict[str, Counter[str]] = field(default_factory=dict)
    peak_rss_mib: dict[str, float] = field(default_factory=dict)

    def count(self, stage: str, worker: Worker, amount: int = 1) -> None:
        self.work.setdefault(stage, Counter())[worker.node] += amount
        self.peak_rss_mib[stage] = round(max(self.peak_rss_mib.get(stage, 0.0), worker.peak_rss_mib), 1)

    def as_dict(self) -> dict[str, object]:
        work = {stage: dict(counted) for stage, counted in self.work.items()}
        return {"address": self.address, "nodes": self.nodes, "work": work, "peak_rss_mib": self.peak_rss_mib}


def connect(address: str, doing: str) -> tuple[Any, bool]:
    """Ray, connected to the cluster at `address` (started here for "local"), and whether this
    call connected (then the caller's `ray.shutdown()` disconnects, and stops a cluster it started);
    a process connected already (a test's cluster) is used as it is."""
    try:
        import ray
    except ImportError:
        raise OpenbookError(f"{doing} on a cluster needs Ray: pip install 'openbook[ray]'") from None
    if ray.is_initialized():
        return ray, False
    if address == "local":
        # "local": a new cluster, even where RAY_ADDRESS or a running one would be joined by default
        ray.init(address="local", include_dashboard=False, log_to_driver=False, configure_logging=False)
    else:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    return ray, True
