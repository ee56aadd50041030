"""Transformers (PyTorch) backend: the same reader interface as llama.cpp, for GPUs (bf16) and CPUs
(fp32), Hugging Face folders, hub ids and the shipped GGUF models (dequantized once into a folder).

A question's shared prefix (context + question) is scored three ways:
- `share_prefix=False`: every continuation from scratch, prefix included (the reference);
- shared KV cache (default): the prefix runs once; its `past_key_values` are repeated across the
  batch of continuations, which run together (right-padded, so no real token sees a pad);
- packed (`packed=True`): prefix and all continuations in ONE sequence, with a 4-D attention mask in
  which each continuation sees the prefix and itself only, and positions that restart after the
  prefix for every continuation: the 5th place's one-pass permutation scoring.
All three give the same log-probabilities up to floating-point summation order (tested).
"""

from __future__ import annotations

import copy
import inspect
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from openbook.backends.base import PromptTemplate, device_and_dtype, log_softmax_at
from openbook.errors import ConfigError, OpenbookError, require_modules
from openbook.models import MODELS, ModelStore, resolve_model
from openbook.models.store import exclusive

_MARKER = "\x00OPENBOOK-USER-TEXT\x00"
CONVERTED = "transformers"  # folder beside a GGUF in the model store holding its dequantized weights


def transformers_folder(model: str, store: ModelStore | None = None) -> str:
    """A folder (or hub id) transformers can load. A registered GGUF language model is dequantized
    to fp16 safetensors once, next to its GGUF in the store, so it can be trained and run layer by layer."""
    if model in MODELS:
        spec = MODELS[model]
        if spec.kind != "llm":
            raise OpenbookError(f"{model} is an embedder, not a language model; see `openbook models list`")
        gguf = resolve_model(model, store)
        return converted(gguf, gguf.parent / CONVERTED)
    path = Path(model).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return converted(path, path.with_name(path.stem + "-" + CONVERTED))
    return str(path) if path.exists() else model


def converted(gguf: Path, folder: Path) -> str:
    """`folder`, converted from `gguf` first unless done; one conversion at a time (a lock beside it)."""
    if not (folder / "config.json").is_file():
        with exclusive(folder.parent):
            if not (folder / "config.json").is_file():  # not converted by another process meanwhile
                convert_gguf(gguf, folder)
    return str(folder)


def convert_gguf(gguf: Path, folder: Path) -> None:
    import shutil

    require_modules("train", "torch", "transformers", "gguf")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float16)
    # transformers flags GGUF-loaded models as quantized and refuses to save them: copy the
    # (already dequantized) weights into a plain model of the same configuration
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    network = AutoModelForCausalLM.from_config(config, dtype=torch.float16)
    network.load_state_dict(loaded.state_dict())
    network.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    partial.rename(folder)


class TransformersBackend:
    name = "transformers"

    def __init__(
        self,
        model: str,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        device: str | None = None,
        dtype: str | None = None,
        max_sequences: int = 16,
        packed: bool = False,
        adapter: str | None = None,
        **_: object,
    ):
        """`device`: cuda when there is one, else cpu; `dtype`: bfloat16 on CUDA, float32 on the CPU;
        `max_sequences`: continuations per batch; `packed`: score a prefix's continuations in one
        sequence with a 4-D mask; `adapter`: a LoRA adapter folder from `openbook train llm`."""
        require_modules("train", "torch", "transformers", *(("peft",) if adapter else ()))
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if n_threads:
            torch.set_num_threads(n_threads)
        self.device, self.dtype = device_and_dtype(device, dtype)
        location = transformers_folder(model)
        self.model_id = model
        self.model_path = location
        self.tokenizer = AutoTokenizer.from_pretrained(location)
        # a plain model, or a PEFT model wrapping it: both are called and moved alike
        self.network: Any = AutoModelForCausalLM.from_pretrained(location, dtype=self.dtype, attn_implementation="sdpa")
        if adapter:
            from peft import PeftModel

            self.network = PeftModel.from_pretrained(self.network, adapter)
        self.network.to(self.device).eval()
        base = self.network.get_base_model() if hasattr(self.network, "get_base_model") else self.network
        self.keeps_logits = "logits_to_keep" in inspect.signature(base.forward).parameters
        self.n_ctx = n_ctx
        self.max_sequences = max_sequences
        self.packed = packed
        self._templates: dict[str | None, PromptTemplate] = {}
        self.model_seconds = 0.0

    # -- text ------------------------------------------------------------------------------
    def tokenize(self, text: str, at_start: bool, special: bool = True) -> list[int]:
        return self.tokenizer(text, add_special_tokens=at_start, split_special_tokens=not special)["input_ids"]

    def single_token_ids(self, texts: Sequence[str]) -> list[int]:
        ids = []
        for text in texts:
            tokens = self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
            if len(tokens) == 1 and tokens[0] not in ids:
                ids.append(tokens[0])
        return ids

    def template(self, system: str | None) -> PromptTemplate:
        if system not in self._templates:
            self._templates[system] = self._render_template(system)
        return self._templates[system]

    def _render_template(self, system: str | None) -> PromptTemplate:
        if not self.tokenizer.chat_template:
            return PromptTemplate(head=f"{system}\n\n" if system else "", tail="\nAnswer:")
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": _MARKER})
        try:
            rendered = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        except Exception:  # templates that refuse a system role
            rendered = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": f"{system}\n\n{_MARKER}"}], tokenize=False, add_generation_prompt=True
            )
        assert isinstance(rendered, str)  # tokenize=False renders text
        head, tail = rendered.split(_MARKER)
        bos = self.tokenizer.bos_token
        added = self.tokenizer("", add_special_tokens=True)["input_ids"]
        if bos and head.startswith(bos) and added and added[0] == self.tokenizer.bos_token_id:
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
        return self.score_many([(prefix, continuations, targets)], share_prefix)[0]

    def score_many(
        self,
        requests: Sequence[tuple[Sequence[int], Sequence[Sequence[int]], Sequence[int]]],
        share_prefix: bool = True,
    ) -> list[np.ndarray]:
        """Several questions' (prefix, continuations, targets) at once. Shared KV: the prefixes run
        as one padded batch, then every question's continuations as one batch on their question's
        cache rows (padding masked), `max_sequences` continuations per forward pass."""
        for prefix, continuations, _ in requests:
            if not all(continuations):
                raise ValueError("every continuation needs at least one token")
            if continuations and len(prefix) + max(len(c) for c in continuations) > self.n_ctx:
                raise ConfigError(  # the user's context budget and n_ctx
                    f"prompt of {len(prefix) + max(len(c) for c in continuations)} tokens exceeds the "
                    f"context window of {self.n_ctx}; lower the context budget or raise n_ctx"
                )
        started = time.perf_counter()
        rows: list[tuple[int, Sequence[int]]] = [(q, c) for q, (_, conts, _) in enumerate(requests) for c in conts]
        groups = [rows[i : i + self.max_sequences] for i in range(0, len(rows), self.max_sequences)]
        if not share_prefix or not all(prefix for prefix, _, _ in requests):  # nothing to share
            logits = [self._from_scratch([(requests[q][0], c) for q, c in group]) for group in groups]
        elif self.packed:
            logits = [self._packed(prefix, list(conts)) for prefix, conts, _ in requests if conts]
        else:
            caches, lengths = self._prefix_caches([prefix for prefix, _, _ in requests])
            logits = [self._on_caches(caches, lengths, group) for group in groups]
        flat = np.concatenate(logits) if logits else np.zeros((0, 1), dtype=np.float32)
        self.model_seconds += time.perf_counter() - started
        results, start = [], 0
        for _, conts, targets in requests:
            block = flat[start : start + len(conts)]
            start += len(conts)
            if not len(block):
                results.append(np.zeros((0, len(targets)), dtype=np.float32))
                continue
            results.append(log_softmax_at(block, targets))
        return results

    def _forward(self, **inputs):
        import torch

        with torch.inference_mode():
            return self.network(
                **{k: (v.to(self.device) if isinstance(v, torch.Tensor) else v) for k, v in inputs.items()}
            )

    def logits_only_at(self, positions: Sequence[int]) -> tuple[dict, list[int]]:
        """Forward arguments that run the output head at these sequence positions alone (in every row
        of the batch), and where each position's logits then are. Over every token a 150K-word head is ~15 % of a 1.5B model's
        work (and its largest activation); models without `logits_to_keep` get the head everywhere."""
        import torch

        if not self.keeps_logits:
            return {}, list(positions)
        columns = sorted(set(positions))
        kept = torch.tensor(columns, dtype=torch.long, device=self.device)  # the same positions in every row
        return {"logits_to_keep": kept}, [columns.index(p) for p in positions]

    def _prefix_caches(self, prefixes: Sequence[Sequence[int]]):
        """One forward pass over all (non-empty) prefixes, right-padded: the batched KV cache and the
        lengths. A pad position's query still sees its row's real tokens, so no row is all masked."""
        ids, mask, _ = _right_padded(prefixes)
        keep = {"logits_to_keep": 1} if self.keeps_logits else {}  # only the cache is wanted
        return self._forward(input_ids=ids, attention_mask=mask, use_cache=True, **keep).cache, [
            len(p) for p in prefixes
        ]

    def _on_caches(self, cache, lengths: Sequence[int], group: Sequence[tuple[int, Sequence[int]]]) -> np.ndarray:
        """Continuations batched on copies of their question's prefix cache rows."""
        import torch

        ids, mask, last = _right_padded([c for _, c in group])
        questions = torch.tensor([q for q, _ in group])
        positions = torch.arange(ids.shape[1])[None, :] + torch.tensor([lengths[q] for q, _ in group])[:, None]
        cache = copy.deepcopy(cache)
        cache.reorder_cache(questions.to(self.device))  # row i <- its question's prefix
        prefix_mask = torch.arange(max(lengths))[None, :] < torch.tensor([lengths[q] for q, _ in group])[:, None]
        mask = torch.cat([prefix_mask.to(mask.dtype), mask], dim=1)
        keep, columns = self.logits_only_at(last)
        out = self._forward(
            input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True, **keep
        )
        return _rows_at(out.logits, columns)

    def _from_scratch(self, sequences: Sequence[tuple[Sequence[int], Sequence[int]]]) -> np.ndarray:
        ids, mask, last = _right_padded([[*prefix, *c] for prefix, c in sequences])
        keep, columns = self.logits_only_at(last)
        return _rows_at(self._forward(input_ids=ids, attention_mask=mask, use_cache=False, **keep).logits, columns)

    def _packed(self, prefix: Sequence[int], group: Sequence[Sequence[int]]) -> np.ndarray:
        """prefix + c1 + … + ck as one sequence; ci attends to the prefix and to ci's earlier tokens."""
        ids, positions, mask, last = packed_layout(prefix, group)
        keep, columns = self.logits_only_at(last)
        out = self._forward(
            input_ids=ids[None], position_ids=positions[None], attention_mask=mask[None, None], use_cache=False, **keep
        )
        return out.logits[0, columns].float().cpu().numpy()


def packed_layout(prefix: Sequence[int], group: Sequence[Sequence[int]]):
    """Token ids, position ids, the boolean (T × T) mask (True: may attend) and each continuation's
    last index, for the packed sequence prefix + c1 + … + ck."""
    import torch

    p = len(prefix)
    total = p + sum(len(c) for c in group)
    ids = torch.tensor([*prefix, *(t for c in group for t in c)])
    positions = torch.empty(total, dtype=torch.long)
    positions[:p] = torch.arange(p)
    mask = torch.zeros(total, total, dtype=torch.bool)
    mask[:p, :p] = torch.ones(p, p, dtype=torch.bool).tril()
    last, start = [], p
    for continuation in group:
        end = start + len(continuation)
        positions[start:end] = torch.arange(p, p + len(continuation))
        mask[start:end, :p] = True
        mask[start:end, start:end] = torch.ones(len(continuation), len(continuation), dtype=torch.bool).tril()
        last.append(end - 1)
        start = end
    return ids, positions, mask, last


def _right_padded(sequences: Sequence[Sequence[int]]):
    import torch

    width = max(len(s) for s in sequences)
    ids = torch.zeros(len(sequences), width, dtype=torch.long)
    mask = torch.zeros(len(sequences), width, dtype=torch.long)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = torch.tensor(list(sequence))
        mask[row, : len(sequence)] = 1
    return ids, mask, [len(s) - 1 for s in sequences]


def _rows_at(logits, last: Sequence[int]) -> np.ndarray:
    import torch

    return logits[torch.arange(len(last)), torch.tensor(last)].float().cpu().numpy()
