"""GGUF embedders on llama.cpp (nomic-embed-text-v1.5): the model's own prefixes, and a language
model's GGUF refused as an embedder."""

from __future__ import annotations

import numpy as np
import pytest

from openbook.embed import EmbedderSettings, load_embedder
from openbook.errors import OpenbookError
from openbook.models import MODELS, ModelStore, resolve_model
from tests.conftest import SEMANTIC_QUERY


def test_gguf_embedder_applies_nomic_prefixes():
    pytest.importorskip("llama_cpp")
    ModelStore().pull(MODELS["nomic-embed-text-v1.5"], log=lambda _: None)
    embedder = load_embedder(EmbedderSettings("nomic-embed-text-v1.5"))
    assert (embedder.query_prefix, embedder.passage_prefix) == ("search_query: ", "search_document: ")
    passages = embedder.encode(["The mitochondrion produces ATP for the cell.", "Volcanoes erupt lava."], "passage")
    query = embedder.encode([SEMANTIC_QUERY], "query")
    as_passage = embedder.encode([SEMANTIC_QUERY], "passage")
    assert passages.shape == (2, 768)
    np.testing.assert_allclose(np.linalg.norm(passages, axis=1), 1.0, atol=1e-5)
    assert (query @ as_passage.T)[0, 0] < 0.999  # the prefix changes the vector
    assert (passages @ query.T)[0, 0] > (passages @ query.T)[1, 0]
    # a language model's GGUF declares no pooling: one vector per token, not an embedder
    ModelStore().pull(MODELS["smollm2-135m-instruct"], log=lambda _: None)
    with pytest.raises(OpenbookError, match="declares no pooling"):
        load_embedder(EmbedderSettings(str(resolve_model("smollm2-135m-instruct"))))
