"""A build is made beside its target and replaces it only when complete (`index.staging`): the old
index serves through a failed or stopped build, files beside an index are never deleted, a failed
input leaves nothing behind, a stopped build of other inputs is not taken for this one."""

from __future__ import annotations

import signal

import pytest
import zstandard

from openbook.errors import OpenbookError
from openbook.index import staging
from openbook.index.build import build_index
from openbook.index.staging import Staging
from openbook.index.verify import verify_index
from tests.conftest import write_jsonl
from tests.index.build_process import checksums, run


def many_articles(path, prefix, count=40):
    return write_jsonl(
        path, [{"id": f"{prefix}{i}", "title": prefix, "text": f"Text {i} of {prefix}."} for i in range(count)]
    )


def test_a_failed_overwrite_leaves_the_old_index_whole_and_nothing_else(tmp_path, articles_jsonl):
    out = tmp_path / "index"
    build_index([articles_jsonl], out, show_progress=False)
    before = checksums(out)
    whole = many_articles(tmp_path / "big.jsonl", "b", 3000)
    cut = tmp_path / "cut.jsonl.zst"
    cut.write_bytes(zstandard.ZstdCompressor().compress(whole.read_bytes())[:-200])  # a download cut short
    with pytest.raises(OpenbookError, match=r"cut\.jsonl\.zst:\d+: damaged or truncated \.zst data"):
        build_index([cut], out, show_progress=False, overwrite=True)
    assert checksums(out) == before and not verify_index(out).problems
    assert sorted(p.name for p in tmp_path.iterdir()) == ["articles.jsonl", "big.jsonl", "cut.jsonl.zst", "index"]


def test_files_beside_an_index_are_never_deleted(tmp_path, articles_jsonl):
    out = tmp_path / "index"
    build_index([articles_jsonl], out, show_progress=False)
    (out / "notes.txt").write_text("mine")
    other = many_articles(tmp_path / "other.jsonl", "o")
    with pytest.raises(
        OpenbookError, match=r"holds files that are not part of its index \(notes\.txt\); move them out"
    ):
        build_index([other], out, show_progress=False, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine" and not verify_index(out).problems
    build_index([articles_jsonl], out, show_progress=False)  # kept: nothing replaced, nothing refused


def test_cirrussearch_of_action_lines_only_names_the_file_and_why_and_leaves_nothing(tmp_path):
    dump = tmp_path / "cirrus.json"
    dump.write_text('{"index": {"_id": "1"}}\n' * 3)
    out = tmp_path / "index"
    with pytest.raises(OpenbookError) as failed:
        build_index([dump], out, show_progress=False)
    message = " ".join(str(failed.value).split())
    assert f"{dump}: 3 CirrusSearch action lines and no page document after any of them" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cirrus.json"]  # no index, no build folder, no lock


def test_a_stopped_build_of_other_inputs_is_not_finished_as_this_one(tmp_path):
    first, second = many_articles(tmp_path / "first.jsonl", "f"), many_articles(tmp_path / "second.jsonl", "s")
    out = tmp_path / "index"
    assert run("passages", 2, "index", first, "--out", out, "--quiet").returncode == -signal.SIGKILL
    with pytest.raises(OpenbookError, match="holds a stopped build of other inputs or settings .*first.jsonl"):
        build_index([second], out, show_progress=False)
    build_index([second], out, show_progress=False, overwrite=True)  # discarded
    assert not verify_index(out).problems and not Staging(out.resolve()).building.exists()


def test_replaced_by_two_renames_where_the_system_cannot_exchange(tmp_path, articles_jsonl, monkeypatch):
    monkeypatch.setattr(staging, "_exchange", lambda first, second: False)
    out = tmp_path / "index"
    build_index([articles_jsonl], out, show_progress=False)
    other = many_articles(tmp_path / "other.jsonl", "o")
    build_index([other], out, show_progress=False, overwrite=True)
    assert not verify_index(out).problems and len(list(tmp_path.iterdir())) == 3
    # a stop between the two renames: the old index is put back, the complete build goes in next time
    places = Staging(out.resolve())
    out.rename(places.replaced)
    places.tidy()
    assert out.is_dir() and not places.replaced.exists() and not verify_index(out).problems


def test_a_folder_of_index_files_without_a_manifest_is_replaced_only_when_asked(tmp_path, articles_jsonl):
    out = tmp_path / "index"
    build_index([articles_jsonl], out, show_progress=False)
    (out / "manifest.json").unlink()  # a half-copied index: whose it is cannot be told
    with pytest.raises(OpenbookError, match="is not empty: it holds files that are not a whole index"):
        build_index([articles_jsonl], out, show_progress=False)
    build_index([articles_jsonl], out, show_progress=False, overwrite=True)
    assert not verify_index(out).problems
