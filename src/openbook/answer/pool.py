"""Where a run's readings are made: in this process, or spread over a pool of Ray actors that each
hold the models (`openbook answer --ray`).

Everything that decides stays in the driver: the plan, retrieval and context packing, the costing of
every reading in tokens, the first pass's plan, the cascade's choice of what to re-read against the
whole run's budget, the decisions and the run log. Only the model evaluations travel. A stage's
readings are cut into `ReadJob`s — a reader, some questions, their contexts — and a pool makes them:
`LocalPool` one after the other with the models loaded here, `RayPool` side by side on its actors.

How a reader reaches an actor: on the driver of a Ray pool, each language model is a `PooledBackend`,
which tokenizes with a copy loaded here (llama.cpp maps the weights and tokenizing touches none of
them) and pickles as a reference to the actor's own copy of the same model. A reader built on the
driver — a stage's, a variant in more option orders, the cascade's order completer — is sent with
its job and reads on the actor with the actor's model; an encoder reader is likewise loaded once per
actor (`EncoderReader.__reduce__`). Every reading is the computation a single process makes, so the
answers are the same.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

from openbook.answer.plan import ClusterPlan, ModelPlan
from openbook.backends import Backend, PromptTemplate, load_backend
from openbook.backends.base import model_path_of
from openbook.errors import ConfigError
from openbook.raycluster import Worker, WorkLog, connect
from openbook.readers import Reader
from openbook.records import Context, Question, ReaderOutput

TOKENS_ONLY_BACKENDS = ("llama.cpp",)  # those that can load the vocabulary alone


def load_model(model: ModelPlan, tokens_only: bool = False) -> Backend:
    """The language model a stage's prompt readers read with; `tokens_only`: only to tokenize with,
    as light as its backend allows (the vocabulary alone for llama.cpp, the whole model otherwise)."""
    extras = {key: value for key, value in (("adapter", model.adapter), ("packed", model.packed)) if value}
    if tokens_only and model.backend in TOKENS_ONLY_BACKENDS:
        extras["tokens_only"] = True
    return load_backend(model.backend, model.name, n_ctx=model.n_ctx, n_threads=model.threads, **extras)


@dataclass(frozen=True)
class ReadJob:
    """`reader` on `questions`, each with its context: one piece of work for one model."""

    reader: Reader
    questions: Sequence[Question]
    contexts: Sequence[Context]


class ReadingPool(Protocol):
    width: int  # jobs it reads side by side: a stage's questions are cut into this many parts

    def model(self, plan: ModelPlan) -> Backend:
        """The model the stage's readers are built on, here."""
        ...

    def read(self, jobs: Sequence[ReadJob]) -> list[list[list[ReaderOutput]]]:
        """Each job's outputs (per question, one per reader name), in the jobs' order."""
        ...

    def model_seconds(self, readers: Sequence[Reader]) -> float:
        """Time the models of `readers` have spent reading so far: where the pool reads, the time the
        driver has waited on it."""
        ...

    def record(self) -> dict[str, object] | None:
        """Where the readings ran, as run.json records it; None in this process."""
        ...

    def close(self) -> None: ...


class LocalPool:
    """The readings made here, one job after the other."""

    width = 1

    def model(self, plan: ModelPlan) -> Backend:
        return load_model(plan)

    def read(self, jobs: Sequence[ReadJob]) -> list[list[list[ReaderOutput]]]:
        return [job.reader.read(job.questions, job.contexts) for job in jobs]

    def model_seconds(self, readers: Sequence[Reader]) -> float:
        return sum(reader.model_seconds for reader in readers)

    def record(self) -> dict[str, object] | None:
        return None

    def close(self) -> None:
        pass


LOCAL = LocalPool()


def split(count: int, parts: int) -> list[range]:
    """`range(count)` cut into at most `parts` consecutive runs of near-equal length, none empty."""
    bounds = np.linspace(0, count, min(parts, count) + 1).round().astype(int)
    return [range(start, end) for start, end in zip(bounds[:-1], bounds[1:]) if end > start]


def busiest(tokens: Sequence[int], width: int) -> int:
    """The tokens of the busiest of `width` readers reading `tokens` side by side, cut into consecutive
    parts as a pool cuts a batch (`split`): the readings take as long as that part."""
    return max((sum(tokens[i] for i in part) for part in split(len(tokens), width)), default=0)


# --- the Ray pool -------------------------------------------------------------------------------

_ACTOR_MODELS: dict[ModelPlan, Backend] = {}  # in an actor's process: the models it holds
_ACTOR_THREADS: list[int] = []  # in an actor's process: the CPU threads it was given


def actor_model(plan: ModelPlan) -> Backend:
    """In an actor: its own copy of the model `plan` names (loaded on first use, with the actor's
    threads); what a `PooledBackend` becomes when a reader built on it arrives."""
    if plan not in _ACTOR_MODELS:
        threads = _ACTOR_THREADS[0] if _ACTOR_THREADS else plan.threads
        _ACTOR_MODELS[plan] = load_model(replace(plan, threads=threads))
    return _ACTOR_MODELS[plan]


class PooledBackend:
    """A language model on the driver of a Ray pool: it tokenizes here (costing readings, packing
    contexts) and reads only on the actors, as whose own model it is unpickled there."""

    def __init__(self, local: Backend, plan: ModelPlan):
        self._local = local
        self._plan = plan
        self.name = local.name
        self.model_id = local.model_id
        self.model_path = model_path_of(local)
        self.model_seconds = 0.0  # its readings are timed by the pool

    def __reduce__(self) -> tuple[Any, tuple[ModelPlan]]:
        return actor_model, (self._plan,)

    def tokenize(self, text: str, at_start: bool, special: bool = True) -> list[int]:
        return self._local.tokenize(text, at_start, special)

    def template(self, system: str | None) -> PromptTemplate:
        return self._local.template(system)

    def single_token_ids(self, texts: Sequence[str]) -> list[int]:
        return self._local.single_token_ids(texts)

    def next_token_logprobs(
        self,
        prefix: Sequence[int],
        continuations: Sequence[Sequence[int]],
        targets: Sequence[int],
        share_prefix: bool = True,
    ) -> np.ndarray:
        raise RuntimeError("a pooled model reads on the pool's actors: send its reader in a ReadJob")


class ReadingActor:
    """A Ray actor holding the run's models; it reads the jobs sent to it."""

    def __init__(self, models: Sequence[ModelPlan], threads: int):
        os.environ["OMP_NUM_THREADS"] = str(threads)  # torch and numpy stay within the actor's CPUs
        _ACTOR_THREADS[:] = [threads]
        for plan in models:  # loaded while the driver loads its own, not mid-budget
            actor_model(plan)

    def read(self, job: ReadJob) -> tuple[list[list[ReaderOutput]], Worker]:
        return job.reader.read(job.questions, job.contexts), Worker.here()

    def ready(self) -> Worker:
        return Worker.here()


class RayPool:
    """Readings side by side on `width` Ray actors, job i on actor i mod width, spread over the
    cluster's nodes; the driver waits for each batch of jobs as a whole."""

    def __init__(self, cluster: ClusterPlan, models: Sequence[ModelPlan]):
        self.ray, self._connected_here = connect(cluster.address, "answering")
        self._actors: list[Any] = []
        self._models: dict[ModelPlan, PooledBackend] = {}
        self._waited = 0.0
        try:
            self._start(cluster, models)
        except BaseException:
            self.close()  # a cluster started for the run is stopped, actors started are killed
            raise

    def _start(self, cluster: ClusterPlan, models: Sequence[ModelPlan]) -> None:
        for plan in models:  # here first: a model that cannot be found is named before any actor starts
            self.model(plan)
        resources = self.ray.cluster_resources()
        # the nodes an actor can run on (a head node is often given no CPU)
        nodes = [node for node in self.ray.nodes() if node["Alive"] and node["Resources"].get("CPU", 0) >= 1]
        self.threads = cluster.threads or min(int(node["Resources"]["CPU"]) for node in nodes)
        self.width = cluster.actors or len(nodes)
        total = int(resources.get("CPU", 0))
        if self.width * self.threads > total:
            raise ConfigError(
                f"{self.width} reading actors of {self.threads} CPU threads need {self.width * self.threads} CPUs; "
                f"the Ray cluster at {cluster.address} has {total}: lower --ray-actors or --threads"
            )
        gpus = 1 if resources.get("GPU", 0) >= self.width else 0
        # an actor whose process dies is started again and its reading retried (a reading has no side effect)
        actor = self.ray.remote(
            num_cpus=self.threads, num_gpus=gpus, scheduling_strategy="SPREAD", max_restarts=2, max_task_retries=2
        )(ReadingActor)
        self._actors = [actor.remote(tuple(models), self.threads) for _ in range(self.width)]
        self.log = WorkLog(cluster.address, nodes=len(nodes))
        for worker in self.ray.get([a.ready.remote() for a in self._actors]):
            self.log.count("actors", worker)

    def model(self, plan: ModelPlan) -> Backend:
        if plan not in self._models:
            self._models[plan] = PooledBackend(load_model(plan, tokens_only=True), plan)
        return self._models[plan]

    def read(self, jobs: Sequence[ReadJob]) -> list[list[list[ReaderOutput]]]:
        began = time.perf_counter()
        refs = [self._actors[i % self.width].read.remote(job) for i, job in enumerate(jobs)]
        try:
            done = self.ray.get(refs)
        except self.ray.exceptions.RayTaskError as error:  # the reader's own error, not Ray's wrapping
            raise (error.cause if isinstance(error.cause, Exception) else error) from None
        finally:
            self._waited += time.perf_counter() - began
        for job, (_, worker) in zip(jobs, done):
            self.log.count("questions read", worker, len(job.questions))
        return [outputs for outputs, _ in done]

    def model_seconds(self, readers: Sequence[Reader]) -> float:
        return self._waited

    def record(self) -> dict[str, object] | None:
        record = self.log.as_dict()
        record["actors"] = self.width
        record["threads_per_actor"] = self.threads
        return record

    def close(self) -> None:
        for actor in self._actors:
            self.ray.kill(actor)
        self._actors = []
        if self._connected_here:
            self.ray.shutdown()


def open_pool(cluster: ClusterPlan | None, models: Sequence[ModelPlan]) -> ReadingPool:
    """The pool a plan reads in: its cluster's, holding `models`, else this process."""
    return LOCAL if cluster is None else RayPool(cluster, models)
