"""The index manifest (`index.manifest`): written by write-then-rename, a damaged one named."""

from __future__ import annotations

import pytest

from openbook.errors import OpenbookError
from openbook.retrieve import BM25Retriever
from tests.conftest import build_test_index


def test_a_damaged_manifest_is_named(tmp_path, articles_jsonl):
    out = build_test_index(tmp_path, [articles_jsonl])
    assert not (out / "manifest.json.partial").exists()  # saved by write-then-rename
    (out / "manifest.json").write_text('{"created": "2026-01-01", "chunk')  # a save cut short
    with pytest.raises(OpenbookError, match="manifest.json: not an openbook index manifest"):
        BM25Retriever(out)
