"""Layer-by-layer inference: run a decoder whose weights do not fit in memory (the 70B entries of
the LLM Science Exam ran this way on two 16 GB GPUs).

Only the embeddings, the final norm and the output head stay resident. The decoder layers are read
from the safetensors files one at a time: every question's hidden states go through layer i, the
layer is freed, layer i + 1 is read. Within a layer each question's shared prefix runs once and its
keys and values for that layer are repeated across the question's continuations, so the prefix is
not recomputed per option here either. Peak memory is one layer plus the activations, whatever the
depth of the model.

Supported: decoders laid out as `model.embed_tokens`, `model.layers[i]`, `model.norm`,
`model.rotary_emb` and `lm_head` with one rotary embedding for all layers (Llama, Qwen2, Mistral,
SmolLM …). Models with per-layer attention kinds (Gemma 3's sliding windows) are refused.
"""

from __future__ import annotations

import copy
import importlib
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from openbook.backends.base import device_and_dtype, log_softmax_at
from openbook.backends.transformers_backend import TransformersBackend, _right_padded, transformers_folder
from openbook.errors import ConfigError, OpenbookError, require_modules

Request = tuple[Sequence[int], Sequence[Sequence[int]], Sequence[int]]  # prefix, continuations, targets


class SafetensorsLayers:
    """Tensors of a checkpoint folder (one file or sharded with an index), read by name prefix."""

    def __init__(self, folder: Path):
        index = folder / "model.safetensors.index.json"
        if index.is_file():
            self.file_of = {name: folder / file for name, file in json.loads(index.read_text())["weight_map"].items()}
        elif (folder / "model.safetensors").is_file():
            from safetensors import safe_open

            with safe_open(folder / "model.safetensors", "pt") as handle:
                self.file_of = {name: folder / "model.safetensors" for name in handle.keys()}
        else:
            raise OpenbookError(
                f"{folder}: no safetensors weights (model.safetensors or its index) to read layer by layer"
            )

    def read(self, prefix: str, dtype) -> dict:
        from safetensors import safe_open

        wanted: dict[Path, list[str]] = {}
        for name, file in self.file_of.items():
            if name.startswith(prefix):
                wanted.setdefault(file, []).append(name)
        tensors = {}
        for file, names in wanted.items():
            with safe_open(file, "pt") as handle:
                for name in names:
                    tensors[name[len(prefix) :]] = handle.get_tensor(name).to(dtype)
        return tensors


class LayeredBackend(TransformersBackend):
    name = "transformers-layered"

    def __init__(
        self,
        model: str,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        device: str | None = None,
        dtype: str | None = None,
        **_: object,
    ):
        require_modules("train", "torch", "transformers", "safetensors")
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        if n_threads:
            torch.set_num_threads(n_threads)
        self.device, self.dtype = device_and_dtype(device, dtype)
        location = Path(transformers_folder(model))
        if not location.is_dir():
            raise OpenbookError(f"layer-by-layer inference reads a local folder; {model!r} is not one")
        self.model_id, self.model_path = model, str(location)
        self.tokenizer = AutoTokenizer.from_pretrained(location)
        self.config = AutoConfig.from_pretrained(location)
        self.config._attn_implementation = "sdpa"  # layers built one by one read it from their config
        if getattr(self.config, "layer_types", None) and len(set(self.config.layer_types)) > 1:
            raise OpenbookError(
                f"{model}: layers of different attention kinds ({sorted(set(self.config.layer_types))}) "
                "are not supported layer by layer"
            )
        self.layers = SafetensorsLayers(location)
        shell_config = copy.deepcopy(self.config)
        shell_config.num_hidden_layers = 0  # embeddings, norm, rotary embedding and head only
        self.shell = AutoModelForCausalLM.from_config(shell_config, dtype=self.dtype, attn_implementation="sdpa")
        resident = {
            f"model.embed_tokens.{k}": v for k, v in self.layers.read("model.embed_tokens.", self.dtype).items()
        }
        resident |= {f"model.norm.{k}": v for k, v in self.layers.read("model.norm.", self.dtype).items()}
        head = self.layers.read("lm_head.", self.dtype)
        resident |= {f"lm_head.{k}": v for k, v in head.items()}
        missing = self.shell.load_state_dict(resident, strict=False).missing_keys
        if "lm_head.weight" in missing and getattr(self.config, "tie_word_embeddings", False):
            self.shell.lm_head.weight = self.shell.model.embed_tokens.weight
        elif [k for k in missing if not k.endswith("inv_freq")]:
            raise OpenbookError(f"{location}: weights missing for the resident parts: {missing}")
        self.shell.to(self.device).eval()
        module = importlib.import_module(type(self.shell).__module__)
        layer_classes = [getattr(module, n) for n in dir(module) if n.endswith("DecoderLayer")]
        if len(layer_classes) != 1:
            raise OpenbookError(f"{model}: cannot tell its decoder layer class ({[c.__name__ for c in layer_classes]})")
        self.layer_class = layer_classes[0]
        self.n_ctx = n_ctx
        self.max_sequences = 1 << 30
        self.packed = False
        self._templates = {}
        self.model_seconds = 0.0
        self.peak_layer_bytes = 0

    def load_layer(self, index: int):
        import torch

        with torch.device("meta"):
            layer = self.layer_class(self.config, index)
        weights = self.layers.read(f"model.layers.{index}.", self.dtype)
        layer.load_state_dict(weights, assign=True, strict=True)
        self.peak_layer_bytes = max(self.peak_layer_bytes, sum(t.numel() * t.element_size() for t in weights.values()))
        return layer.to(self.device).eval()

    def next_token_logprobs(
        self,
        prefix: Sequence[int],
        continuations: Sequence[Sequence[int]],
        targets: Sequence[int],
        share_prefix: bool = True,
    ) -> np.ndarray:
        return self.score_many([(prefix, continuations, targets)], share_prefix)[0]

    def score_many(self, requests: Sequence[Request], share_prefix: bool = True) -> list[np.ndarray]:
        """Log-probabilities of the targets after each continuation, for many questions in one walk
        through the layers."""
        import torch
        from transformers import DynamicCache

        if not share_prefix:  # the reference: prefix and continuation as one sequence each, no sharing
            requests = [
                ([], [[*prefix, *c] for c in continuations], targets) for prefix, continuations, targets in requests
            ]

        for prefix, continuations, _ in requests:
            if not continuations or not all(continuations):
                raise ValueError("every question needs continuations of at least one token")
            longest = len(prefix) + max(len(c) for c in continuations)
            if longest > self.n_ctx:
                raise ConfigError(  # the user's context budget and n_ctx
                    f"prompt of {longest} tokens exceeds the context window of {self.n_ctx}; "
                    "lower the context budget or raise n_ctx"
                )
        started = time.perf_counter()
        embed, rotary = self.shell.model.embed_tokens, self.shell.model.rotary_emb
        states = []
        with torch.inference_mode():
            for prefix, continuations, _ in requests:
                ids, pad_mask, last = _right_padded(continuations)
                p = len(prefix)
                prefix_ids = torch.tensor([list(prefix)], dtype=torch.long)
                prefix_positions = torch.arange(p)[None]
                positions = (torch.arange(ids.shape[1])[None] + p).expand_as(ids)
                width = ids.shape[1]
                # continuation rows see the whole prefix, their own earlier tokens, and no padding
                own = torch.ones(width, width, dtype=torch.bool).tril()[None] & pad_mask.bool()[:, None, :]
                mask = torch.cat([torch.ones(len(continuations), width, p, dtype=torch.bool), own], dim=2)[:, None]
                states.append(
                    {
                        "prefix": embed(prefix_ids.to(self.device)) if p else None,
                        "prefix_rope": rotary(embed.weight[:1][None], prefix_positions.to(self.device)) if p else None,
                        "prefix_mask": torch.ones(p, p, dtype=torch.bool).tril()[None, None].to(self.device),
                        "hidden": embed(ids.to(self.device)),
                        "rope": rotary(embed.weight[:1][None], positions.to(self.device)),
                        "mask": mask.to(self.device),
                        "last": last,
                        "count": len(continuations),
                        "prefix_positions": prefix_positions.to(self.device),
                        "positions": positions.to(self.device),
                    }
                )
            for index in range(self.config.num_hidden_layers):
                layer = self.load_layer(index)
                for state in states:
                    cache = None
                    if state["prefix"] is not None:
                        cache = DynamicCache()
                        state["prefix"] = layer(
                            state["prefix"],
                            attention_mask=state["prefix_mask"],
                            position_ids=state["prefix_positions"],
                            cache=cache,
                            use_cache=True,
                            position_embeddings=state["prefix_rope"],
                        )
                        cache.batch_repeat_interleave(state["count"])
                    state["hidden"] = layer(
                        state["hidden"],
                        attention_mask=state["mask"],
                        position_ids=state["positions"],
                        cache=cache,
                        use_cache=cache is not None,
                        position_embeddings=state["rope"],
                    )
                del layer
            results = []
            for state, (_, _, targets) in zip(states, requests):
                hidden = self.shell.model.norm(
                    state["hidden"][torch.arange(state["count"]), torch.tensor(state["last"])]
                )
                logits = self.shell.lm_head(hidden).float().cpu().numpy()
                results.append(log_softmax_at(logits, targets))
        self.model_seconds += time.perf_counter() - started
        return results
