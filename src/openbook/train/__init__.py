"""Training: models that openbook fine-tunes itself (a cross-encoder reranker so far)."""
