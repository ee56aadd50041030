"""Indexes: the passage store, BM25 (bm25s or tantivy), and the pipeline that builds them."""
