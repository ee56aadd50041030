"""The dense retriever (`retrieve.dense`) embeds queries with its index's own model and prefixes."""

from __future__ import annotations

from openbook.embed import EmbedderSettings
from openbook.index.build import build_index
from openbook.index.dense_build import build_dense_index
from openbook.retrieve.dense import DenseRetriever
from tests.conftest import ENCODER_BASE


def test_prefixes_from_configuration_are_recorded_and_used_for_queries(tmp_path, articles_jsonl, minilm):
    index = tmp_path / "index"
    build_index([articles_jsonl], index, show_progress=False)
    info = build_dense_index(
        index, EmbedderSettings(ENCODER_BASE, query_prefix="query: ", passage_prefix="passage: "), show_progress=False
    )
    assert (info.query_prefix, info.passage_prefix) == ("query: ", "passage: ")
    retriever = DenseRetriever(index)
    assert (retriever.embedder.query_prefix, retriever.embedder.passage_prefix) == ("query: ", "passage: ")
    plain = minilm.encode(["Mitochondrion\nThe mitochondrion"], "passage")
    prefixed = retriever.embedder.encode(["Mitochondrion\nThe mitochondrion"], "passage")
    assert (plain @ prefixed.T)[0, 0] < 0.9999
