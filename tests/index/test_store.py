"""The passage store (`index.store`): passages written in record batches, read back by row."""

from __future__ import annotations

import pytest

from openbook.index.store import PassageStore


def test_store_lookup_across_record_batches(tmp_path):
    from openbook.index.store import PassageWriter
    from openbook.records import Passage

    writer = PassageWriter(tmp_path, batch_rows=3)
    passages = [Passage(id=f"d:{i}", doc_id="d", title="T", text=f"text {i}", chunk=i) for i in range(10)]
    for passage in passages:
        writer.add([passage])
    assert writer.close() == 10
    store = PassageStore(tmp_path)
    assert len(store) == 10
    assert store.get([9, 0, 4, 3, 4]) == [passages[i] for i in (9, 0, 4, 3, 4)]
    assert [p for batch in store.iter_batches() for p in batch] == passages
    with pytest.raises(IndexError):
        store.get([10])
