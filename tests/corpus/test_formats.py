from __future__ import annotations

import bz2
import csv
import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from openbook.corpus import DropTally, detect_format, read_documents
from openbook.errors import InputError
from tests.conftest import ARTICLES

WIKIEXTRACTOR = (
    '<doc id="12" url="https://en.wikipedia.org/wiki?curid=12" title="Anarchism &amp; order">\n'
    "Anarchism &amp; order\n\nAnarchism is a political philosophy.\nIt has many currents.\n</doc>\n"
    '<doc id="25" url="u" title="Autism">\nAutism\n\nAutism is a developmental disorder.\n</doc>\n'
    '<doc id="39" url="u" title="Empty">\nEmpty\n</doc>\n'
    '<doc id="40" url="u" title="Cut off">\nCut off\n\nThis block never ends.\n'
)


def compress(data: bytes, path: Path) -> Path:
    suffix = path.suffix
    if suffix == ".zst":
        path.write_bytes(zstandard.ZstdCompressor().compress(data))
    elif suffix == ".gz":
        path.write_bytes(gzip.compress(data))
    elif suffix == ".bz2":
        path.write_bytes(bz2.compress(data))
    else:
        path.write_bytes(data)
    return path


@pytest.mark.parametrize("suffix", ["", ".zst", ".gz", ".bz2"])
def test_wikiextractor_blocks_and_compression(tmp_path, suffix):
    path = compress(WIKIEXTRACTOR.encode(), tmp_path / f"wiki_00{suffix}")
    tally = DropTally()
    documents = list(read_documents(path, tally=tally))
    assert [(d.id, d.title) for d in documents] == [("12", "Anarchism & order"), ("25", "Autism")]
    assert documents[0].text == "\nAnarchism is a political philosophy.\nIt has many currents.".strip()
    assert tally.counts == {"empty text": 1, "unterminated <doc> block": 1}
    assert tally.examples["unterminated <doc> block"] == [f"{path}:15"]


@pytest.mark.parametrize("suffix", [".zst", ".gz", ".bz2"])
def test_a_truncated_or_mislabelled_compressed_file_is_named_not_half_read(tmp_path, suffix):
    lines = [json.dumps({"id": str(i), "title": f"T{i}", "text": f"Passage number {i} " * 8}) for i in range(3000)]
    whole = compress("\n".join(lines).encode() + b"\n", tmp_path / f"whole.jsonl{suffix}")
    cut = tmp_path / f"cut.jsonl{suffix}"
    cut.write_bytes(whole.read_bytes()[: len(whole.read_bytes()) * 2 // 3])
    assert len(list(read_documents(whole))) == 3000
    with pytest.raises(InputError, match=rf"cut.jsonl{suffix}:\d+: damaged or truncated") as caught:
        list(read_documents(cut, "jsonl"))
    assert 1 <= caught.value.line <= 3000  # bz2 decodes whole 900 kB blocks: nothing of a cut one
    if suffix == ".gz":  # damaged inside, not cut short: a bad deflate block (zlib.error), a bad checksum
        for start in (12, len(whole.read_bytes()) // 2):
            data = bytearray(whole.read_bytes())
            data[start : start + 16] = b"\xff" * 16
            damaged = tmp_path / "damaged.jsonl.gz"
            damaged.write_bytes(bytes(data))
            with pytest.raises(InputError, match="damaged.jsonl.gz"):
                list(read_documents(damaged, "jsonl"))
    several = tmp_path / "frames.jsonl.zst"  # zstd frames one after another are one stream
    several.write_bytes(b"".join(zstandard.ZstdCompressor().compress(f"{line}\n".encode()) for line in lines[:50]))
    assert len(list(read_documents(several))) == 50
    plain = tmp_path / f"plain.jsonl{suffix}"
    plain.write_text(lines[0] + "\n")  # not compressed at all
    with pytest.raises(InputError, match="plain.jsonl"):
        list(read_documents(plain, "jsonl"))


def test_wikiextractor_undecodable_block_is_dropped_not_fatal(tmp_path):
    data = WIKIEXTRACTOR.replace("It has many currents.", "It has many curr\udce9nts.").encode(
        "utf-8", "surrogateescape"
    )
    tally = DropTally()
    documents = list(read_documents(compress(data, tmp_path / "w.txt"), tally=tally))
    assert [d.id for d in documents] == ["25"]
    assert tally.counts["undecodable bytes (not UTF-8)"] == 1


def cirrus_lines() -> list[dict]:
    page = {
        "namespace": 0,
        "title": "Photosynthesis",
        "text": "Plants make sugar from light.",
        "opening_text": None,
        "page_id": 101,
        "redirect": [{"namespace": 0, "title": "Photosynthetic"}],
        "version": 3,
        "namespace_text": "",
        "source_text": "'''Plants''' ...",
        "coordinates": [],
    }
    return [
        {"index": {"_type": "page", "_id": "101"}},
        page,
        {"index": {"_id": "102"}},
        {"namespace": 4, "title": "Wikipedia:About", "text": "About us.", "page_id": 102},
        {"index": {"_id": "103"}},
        {"namespace": 0, "title": "Old name", "text": "#REDIRECT [[New name]]"},
        {"index": {"_id": "104"}},
        {"namespace": 0, "title": "No text", "text": None, "opening_text": None},
        {"index": {"_id": "105"}},
        {"namespace": 0, "title": "Lead only", "opening_text": "Only a lead."},
    ]


def test_cirrussearch_layout(tmp_path):
    lines = [json.dumps(x) for x in cirrus_lines()]
    lines.insert(4, "{broken json")
    path = compress("\n".join(lines).encode() + b"\n", tmp_path / "enwiki-content.json.gz")
    assert detect_format(path) == "cirrussearch"
    tally = DropTally()
    documents = list(read_documents(path, tally=tally))
    assert [(d.id, d.title, d.text) for d in documents] == [
        ("101", "Photosynthesis", "Plants make sugar from light."),
        ("105", "Lead only", "Only a lead."),
    ]
    assert tally.counts == {
        "namespace 4 (not an article)": 1,
        "redirect": 1,
        "missing 'text' field": 1,
        "invalid JSON (Expecting property name enclosed in double quotes)": 1,
    }


def test_real_cirrussearch_sample(shared_data):
    tally = DropTally()
    documents = list(read_documents(shared_data / "corpus" / "cirrussearch-sample.json.gz", tally=tally))
    assert len(documents) == 400 and tally.total == 0
    assert documents[0].title == "Anarchism" and documents[0].id == "12"


def test_jsonl_parquet_csv_agree(tmp_path):
    records = [{"id": i, "title": t, "text": x} for i, t, x in ARTICLES]
    jsonl = compress("".join(json.dumps(r) + "\n" for r in records).encode(), tmp_path / "a.jsonl.zst")
    parquet = tmp_path / "a.parquet"
    pq.write_table(pa.Table.from_pylist(records), parquet)
    csv_path = tmp_path / "a.csv"
    with csv_path.open("w", newline="", encoding="utf-8-sig") as handle:  # with a byte-order mark, as Excel writes
        writer = csv.DictWriter(handle, ["id", "title", "text"])
        writer.writeheader()
        writer.writerows(records)
    marked = tmp_path / "marked.jsonl"
    marked.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8-sig")
    results = [[(d.id, d.title, d.text) for d in read_documents(p)] for p in (jsonl, parquet, csv_path, marked)]
    assert results[0] == results[1] == results[2] == results[3] == [(i, t, x) for i, t, x in ARTICLES]


def test_table_field_mapping_and_generated_ids(tmp_path):
    from openbook.corpus import FieldMap

    path = tmp_path / "b.jsonl"
    path.write_text('{"name": "T", "body": "Some text."}\n{"name": "U"}\n[1, 2]\n')
    tally = DropTally()
    documents = list(read_documents(path, fields=FieldMap(title="name", text="body"), tally=tally))
    assert [(d.id, d.title) for d in documents] == [("b.jsonl:1", "T")]
    assert tally.counts == {"missing 'body' field": 1, "JSON line is not an object": 1}


def test_csv_bad_rows_counted(tmp_path):
    path = tmp_path / "c.csv"
    path.write_bytes(b"id,title,text\n1,A,Good text.\n2,B,caf\xe9\n3,C,x,extra\n4,D,Fine.\n")
    tally = DropTally()
    assert [d.id for d in read_documents(path, tally=tally)] == ["1", "4"]
    assert tally.counts == {"undecodable bytes (not UTF-8)": 1, "row has more fields than the header": 1}
    assert tally.examples["undecodable bytes (not UTF-8)"] == [f"{path}:3"]


def test_tsv_takes_quotes_as_text_and_a_leading_blank_line_keeps_the_header(tmp_path):
    tsv = tmp_path / "q.tsv"
    tsv.write_text(
        'id\ttitle\ttext\n1\tHamlet\t"To be, or not to be" is a line.\n2\tInch\t"12 inch records.\n'
        "3\tVinyl\tVinyl is a plastic.\n"
    )
    tally = DropTally()
    documents = list(read_documents(tsv, tally=tally))
    assert [d.text for d in documents] == [
        '"To be, or not to be" is a line.',
        '"12 inch records.',
        "Vinyl is a plastic.",
    ]
    assert tally.total == 0
    blank_first = tmp_path / "b.csv"
    blank_first.write_text('\n\nid,title,text\n1,A,"one\n\ntwo"\n2,B,x,extra\n')
    tally = DropTally()
    assert [d.text for d in read_documents(blank_first, tally=tally)] == ["one\n\ntwo"]
    assert tally.examples == {"row has more fields than the header": [f"{blank_first}:7"]}  # its first line


def test_whole_file_problems_raise_clear_errors(tmp_path):
    parquet = tmp_path / "p.parquet"
    pq.write_table(pa.table({"body": ["x"]}), parquet)
    with pytest.raises(InputError, match="no 'text' column; found body"):
        read_documents(parquet)
    table = tmp_path / "t.csv.gz"
    table.write_bytes(gzip.compress(b"id,body\n1,x\n"))
    with pytest.raises(InputError, match="t.csv.gz:1: no 'text' column; found id, body"):
        read_documents(table)
    unknown = tmp_path / "u.txt"
    unknown.write_text("plain words\n")
    with pytest.raises(InputError, match="cannot tell the corpus format"):
        read_documents(unknown)
    with pytest.raises(InputError, match="corpus file not found"):
        read_documents(tmp_path / "missing.jsonl")
    not_parquet = tmp_path / "n.parquet"
    not_parquet.write_text("id,text\n")
    with pytest.raises(InputError, match=r"n.parquet: not a readable Parquet file"):
        read_documents(not_parquet)
    squeezed = tmp_path / "p.parquet.gz"
    squeezed.write_bytes(gzip.compress(parquet.read_bytes()))
    with pytest.raises(InputError, match=r"p.parquet.gz: a Parquet file compresses its own columns"):
        read_documents(squeezed)


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"id": "1", "title": "T", "text": {"a": "b"}}, "'text' is an object, not text"),
        ({"id": "1", "title": "T", "text": ["a", "b"]}, "'text' is a list, not text"),
        ({"id": "1", "title": "T", "text": 42}, "'text' is a number, not text"),
        ({"id": "1", "title": "T", "text": True}, "'text' is a boolean, not text"),
        ({"id": "1", "title": 3.5, "text": "Words."}, "'title' is a number, not text"),
        ({"id": "1", "title": False, "text": "Words."}, "'title' is a boolean, not text"),
        ({"id": {"n": 1}, "title": "T", "text": "Words."}, "'id' is an object, not text"),
    ],
)
def test_a_field_that_is_not_text_is_a_counted_drop_never_its_python_form(tmp_path, record, reason):
    for path in (tmp_path / "c.jsonl", tmp_path / "c.parquet"):
        if path.suffix == ".jsonl":
            path.write_text(json.dumps(record) + "\n" + json.dumps({"id": "2", "text": "Kept."}) + "\n")
        else:
            if isinstance(record["text"], dict | list) or isinstance(record["id"], dict):
                continue  # a Parquet column holds one type: objects and lists are the JSON cases
            pq.write_table(pa.Table.from_pylist([record]), path)
        tally = DropTally()
        documents = list(read_documents(path, tally=tally))
        assert "{'a'" not in str(documents) and "True" not in str(documents)
        assert [d.id for d in documents] == (["2"] if path.suffix == ".jsonl" else [])
        assert dict(tally.counts) == {reason: 1}, path
    numbers = tmp_path / "numbers.jsonl"
    numbers.write_text('{"id": 7, "text": "A."}\n{"id": 8.5, "text": "B."}\n')
    assert [d.id for d in read_documents(numbers)] == ["7", "8.5"]  # numeric ids are ids


def test_documents_after_a_resume_point_count_only_the_drops_after_it(tmp_path):
    from openbook.corpus.formats import DocumentReader

    path = tmp_path / "c.jsonl"
    lines = [
        '{"id": "1", "text": "One."}',
        "not json",
        '{"id": "2", "text": "Two."}',
        "{bad",
        '{"id": "3", "text": "3."}',
    ]
    path.write_text("\n".join(lines) + "\n")
    whole, resumed = DropTally(), DropTally()
    assert [d.id for d in DocumentReader(path, tally=whole)] == ["1", "2", "3"]
    reader = DocumentReader(path, tally=resumed)
    assert [d.id for d in reader.documents_after(1)] == ["2", "3"]
    assert sum(resumed.counts.values()) == 2 == sum(whole.counts.values())  # both invalid lines come after document 1
    reader = DocumentReader(path, tally=(after_two := DropTally()))
    assert [d.id for d in reader.documents_after(2)] == ["3"]
    assert after_two.examples == {"invalid JSON (Expecting property name enclosed in double quotes)": [f"{path}:4"]}
    assert DropTally.from_dict(whole.as_dict()).as_dict() == whole.as_dict()


def test_drop_tallies_merged_in_order_keep_the_first_examples_as_one_tally_would():
    whole, first, second = DropTally(examples_per_reason=3), DropTally(examples_per_reason=3), DropTally()
    for line in range(1, 6):
        (first if line <= 2 else second).drop("empty text", "a.jsonl", line)
        whole.drop("empty text", "a.jsonl", line)
    second.drop("redirect", "a.jsonl", 9)
    whole.drop("redirect", "a.jsonl", 9)
    first.merge(second)
    assert first.counts == whole.counts == {"empty text": 5, "redirect": 1}
    assert (
        first.examples
        == whole.examples
        == {"empty text": ["a.jsonl:1", "a.jsonl:2", "a.jsonl:3"], "redirect": ["a.jsonl:9"]}
    )
