"""llama.cpp backend (llama-cpp-python): GGUF models on the CPU (or a GPU build), with one context
holding several sequences so a question's shared prefix is evaluated once.

How the prefix is shared: the prefix is decoded into sequence 0; `llama_memory_seq_cp` copies its
KV cache into sequences 1..n, and each continuation is decoded on its own sequence, asking for
logits only at its last token. The cache is cleared before the next question.

Exactness. Each sequence has its own KV stream (`kv_unified = False`) and, by default, each
continuation gets its own decode call: the computation a continuation sees is then the same as
scoring it from scratch (prefix, then continuation, in a fresh cache), and so are its scores, to the
last bit (tested). `batch_continuations=True` decodes all continuations of a prefix in one call,
several sequences in one batch; on a GPU that is the faster way, but on 2 CPU cores it was no faster
(qwen2.5-coder-1.5b: 31.3 s batched vs 29.7 s one call each, 2 questions), and with K-quant models
the CPU kernels' results depend on the batch's shape, moving option probabilities by up to 0.04
(a unified KV stream does the same, up to 0.2 in log-probability). The price of exactness is a
copy of the prefix's cache per continuation (megabytes), small next to recomputing the prefix.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import numpy as np

from openbook.backends.base import PromptTemplate, log_softmax_at
from openbook.errors import ConfigError, OpenbookError
from openbook.models import MODELS, resolve_model

_MARKER = "\x00OPENBOOK-USER-TEXT\x00"


class LlamaCppBackend:
    name = "llama.cpp"

    def __init__(
        self,
        model: str,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        max_sequences: int = 12,
        n_gpu_layers: int = 0,
        batch_continuations: bool = False,
        verbose: bool = False,
        tokens_only: bool = False,
    ):
        """`n_ctx`: tokens per sequence (prefix + one continuation); `max_sequences`: the prefix plus
        up to `max_sequences - 1` continuations sharing it; `batch_continuations`: decode those
        continuations in one call (several sequences in one batch) instead of one call each;
        `tokens_only`: the vocabulary alone, to tokenize and template (a reading pool's driver), no
        weights and no context to read with."""
        import llama_cpp
        from llama_cpp import _internals, _logger

        _logger.set_verbose(verbose)  # llama.cpp's own log lines: errors only unless asked

        if model in MODELS and MODELS[model].kind != "llm":
            raise OpenbookError(f"{model} is an embedder, not a language model; see `openbook models list`")
        path = resolve_model(model)
        self.model_id = model
        self.model_path = str(path)
        self._lib = llama_cpp
        model_params = llama_cpp.llama_model_default_params()
        model_params.n_gpu_layers = n_gpu_layers
        model_params.vocab_only = tokens_only
        self._model = _internals.LlamaModel(path_model=str(path), params=model_params, verbose=False)
        self.n_ctx = n_ctx
        self.n_vocab = self._model.n_vocab()
        self.metadata = self._model.metadata()
        self._templates: dict[str | None, PromptTemplate] = {}
        self.model_seconds = 0.0  # time inside llama_decode: what the pipeline's overhead is measured against
        self.tokens_only = tokens_only
        if tokens_only:
            return
        context_params = llama_cpp.llama_context_default_params()
        context_params.n_ctx = n_ctx * max_sequences  # split evenly into one stream per sequence
        context_params.n_batch = n_ctx  # a whole prefix, or a group of continuations, per decode call
        context_params.n_ubatch = min(512, n_ctx)
        context_params.n_seq_max = max_sequences
        context_params.kv_unified = False
        threads = n_threads or os.cpu_count() or 1
        context_params.n_threads = threads
        context_params.n_threads_batch = threads
        self._context = _internals.LlamaContext(model=self._model, params=context_params, verbose=False)
        self._memory = llama_cpp.llama_get_memory(self._context.ctx)
        self._batch = _internals.LlamaBatch(n_tokens=n_ctx, embd=0, n_seq_max=1, verbose=False)
        self.batch_continuations = batch_continuations
        self.max_sequences = max_sequences

    # -- text ------------------------------------------------------------------------------
    def tokenize(self, text: str, at_start: bool, special: bool = True) -> list[int]:
        add_bos = at_start and self._model.add_bos_token()
        return self._model.tokenize(text.encode("utf-8"), add_bos=add_bos, special=special)

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self._model.detokenize(list(tokens), special=True).decode("utf-8", errors="replace")

    def single_token_ids(self, texts: Sequence[str]) -> list[int]:
        ids = []
        for text in texts:
            tokens = self._model.tokenize(text.encode("utf-8"), add_bos=False, special=False)
            if len(tokens) == 1 and tokens[0] not in ids:
                ids.append(tokens[0])
        return ids

    def template(self, system: str | None) -> PromptTemplate:
        """The GGUF's own chat template (tokenizer.chat_template), split around the user's text.
        A model without one (a base model) gets plain text with an `Answer:` cue."""
        if system not in self._templates:
            self._templates[system] = self._render_template(system)
        return self._templates[system]

    def _render_template(self, system: str | None) -> PromptTemplate:
        source = self.metadata.get("tokenizer.chat_template")
        if not source:
            head = f"{system}\n\n" if system else ""
            return PromptTemplate(head=head, tail="\nAnswer:")
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        bos = self.detokenize([self._model.token_bos()]) if self._model.token_bos() >= 0 else ""
        eos = self.detokenize([self._model.token_eos()]) if self._model.token_eos() >= 0 else ""
        formatter = Jinja2ChatFormatter(template=source, eos_token=eos, bos_token=bos, add_generation_prompt=True)
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": _MARKER})
        try:
            rendered = formatter(messages=messages).prompt  # type: ignore[arg-type]  # plain dicts are its run-time input; its stubs want TypedDicts
        except Exception:  # templates that refuse a system role (Gemma folds it into the user turn)
            rendered = formatter(messages=[{"role": "user", "content": f"{system}\n\n{_MARKER}"}]).prompt
        head, tail = rendered.split(_MARKER)
        if bos and head.startswith(bos) and self._model.add_bos_token():
            head = head[len(bos) :]  # tokenize(at_start=True) adds BOS itself: not twice
        return PromptTemplate(head=head, tail=tail)

    # -- scoring ---------------------------------------------------------------------------
    def next_token_logprobs(
        self,
        prefix: Sequence[int],
        continuations: Sequence[Sequence[int]],
        targets: Sequence[int],
        share_prefix: bool = True,
    ) -> np.ndarray:
        if self.tokens_only:
            raise RuntimeError(f"{self.model_id} was loaded as its vocabulary alone (tokens_only): it cannot read")
        if share_prefix:
            groups = [(prefix, group) for group in self._groups(continuations)]
        else:  # the reference: for every continuation the prefix is evaluated again, in a fresh cache
            groups = [(prefix, [continuation]) for continuation in continuations]
        scores = [self._score(group_prefix, group, targets) for group_prefix, group in groups]
        return np.concatenate(scores) if scores else np.zeros((0, len(targets)), dtype=np.float32)

    def _groups(self, continuations: Sequence[Sequence[int]]) -> list[list[Sequence[int]]]:
        """Continuations in decode groups, each group one prefix evaluation: at most max_sequences - 1
        (sequence 0 holds the prefix), and, decoded together in one batch (`batch_continuations`),
        at most n_ctx tokens; decoded one call each, a continuation's tokens only fill its own sequence."""
        groups: list[list[Sequence[int]]] = [[]]
        tokens = 0
        for continuation in continuations:
            over_batch = self.batch_continuations and tokens + len(continuation) > self.n_ctx
            if groups[-1] and (len(groups[-1]) == self.max_sequences - 1 or over_batch):
                groups.append([])
                tokens = 0
            groups[-1].append(continuation)
            tokens += len(continuation)
        return groups if groups[0] else []

    def _score(
        self, prefix: Sequence[int], continuations: Sequence[Sequence[int]], targets: Sequence[int]
    ) -> np.ndarray:
        if not all(continuations):
            raise ValueError("every continuation needs at least one token")
        prefix = list(prefix)
        longest = len(prefix) + max(len(c) for c in continuations)
        if longest > self.n_ctx:
            raise ConfigError(  # the user's context budget and n_ctx
                f"prompt of {longest} tokens exceeds the context window of {self.n_ctx}; "
                "lower the context budget or raise n_ctx"
            )
        self._lib.llama_memory_clear(self._memory, True)
        if prefix:
            self._fill([(token, position, 0, False) for position, token in enumerate(prefix)])
            self._decode()
        batches: list[list[tuple[int, int, int, bool]]] = []
        for seq, continuation in enumerate(continuations, start=1):
            if prefix:
                self._lib.llama_memory_seq_cp(self._memory, 0, seq, -1, -1)
            entries = [
                (token, len(prefix) + offset, seq, offset == len(continuation) - 1)
                for offset, token in enumerate(continuation)
            ]
            if self.batch_continuations and batches:
                batches[-1].extend(entries)
            else:
                batches.append(entries)
        target_ids = np.asarray(targets, dtype=np.int64)
        rows = []
        for entries in batches:
            self._fill(entries)
            self._decode()
            for index, (_, _, _, wants_logits) in enumerate(entries):
                if wants_logits:
                    logits = np.ctypeslib.as_array(self._context.get_logits_ith(index), shape=(self.n_vocab,))
                    rows.append(log_softmax_at(logits, target_ids))
        self._lib.llama_memory_clear(self._memory, True)
        return np.stack(rows)

    def _decode(self) -> None:
        started = time.perf_counter()
        self._context.decode(self._batch)
        self.model_seconds += time.perf_counter() - started

    def _fill(self, entries: Sequence[tuple[int, int, int, bool]]) -> None:
        """Load (token, position, sequence, wants logits) entries into the reusable batch."""
        batch = self._batch.batch
        batch.n_tokens = len(entries)
        for i, (token, position, seq, wants_logits) in enumerate(entries):
            batch.token[i] = token
            batch.pos[i] = position
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq
            batch.logits[i] = wants_logits
