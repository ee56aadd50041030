"""`openbook index` then `openbook search`, and a config file whose flags the command line overrides."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from openbook.cli.main import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_index_then_search(tmp_path, articles_jsonl):
    out = tmp_path / "idx"
    result = invoke("index", articles_jsonl, "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    result = invoke("search", out, "Which organelle produces ATP?", "-k", "1")
    assert result.exit_code == 0
    assert "Mitochondrion" in result.output and "powerhouse of the cell" in result.output
    assert "Photosynthesis" not in result.output


def test_config_file_supplies_flags_and_the_command_line_wins(tmp_path, articles_jsonl):
    out = tmp_path / "idx"
    config = tmp_path / "openbook.toml"
    config.write_text(
        f'[index]\ninputs = ["{articles_jsonl}"]\nout = "{out}"\nchunk_size = 64\n'
        'engine = "tantivy"\nprogress = false\noverwrite = true\n[search]\nk = 2\n'
    )
    assert invoke("index", "--config", config).exit_code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["chunking"]["size"] == 64 and manifest["indexes"]["bm25"]["engine"] == "tantivy"
    # `--no-overwrite` on the command line beats `overwrite = true` in the file: an index of the same
    # inputs and settings is kept, one of other settings is not replaced
    result = invoke("index", "--config", config, "--no-overwrite")
    assert result.exit_code == 0 and "kept" in result.output
    result = invoke("index", "--config", config, "--no-overwrite", "--chunk-size", "128")
    assert result.exit_code == 2 and "not empty" in result.output
    result = invoke("search", out, "light", "--config", config)  # matches more than two passages
    assert result.output.count("score ") == 2


def test_verify_index_reads_every_part_and_names_the_damage_and_the_repair(tmp_path, articles_jsonl):
    out = tmp_path / "idx"
    assert invoke("index", articles_jsonl, "--out", out, "--quiet").exit_code == 0
    result = invoke("verify-index", out)
    assert result.exit_code == 0, result.output
    assert "ok  passages.arrow" in result.output and "ok  bm25/data.csc.index.npy" in result.output
    assert "whole: 9 parts" in result.output
    store = out / "passages.arrow"
    data = bytearray(store.read_bytes())
    data[-100] ^= 0x01  # in the footer's padding or metadata: every open still works
    store.write_bytes(bytes(data))
    result = invoke("verify-index", out)
    said = " ".join(result.output.split())
    assert result.exit_code == 2
    assert f"damaged {store} does not have the checksum it was built with" in said
    assert f"is damaged (1 problem(s) above); rebuild it with `openbook index {articles_jsonl} --out " in said
    assert invoke("verify-index", tmp_path).exit_code == 2  # not an index: named
    assert "verify-index" in invoke("--help").output


def test_search_on_a_cut_store_names_the_file_and_the_command_that_rebuilds_it(tmp_path, articles_jsonl):
    out = tmp_path / "idx"
    assert invoke("index", articles_jsonl, "--out", out, "--quiet").exit_code == 0
    store = out / "passages.arrow"
    store.write_bytes(store.read_bytes()[:500])
    result = invoke("search", out, "light")
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert (
        f"{store} has 500 bytes, not the" in said and f"rebuild it with `openbook index {articles_jsonl} --out" in said
    )
    result = invoke("index", articles_jsonl, "--out", out, "--quiet")  # what the error says to run: it rebuilds
    assert result.exit_code == 0 and "rebuilding it" in " ".join(result.output.split())
    assert invoke("search", out, "light").exit_code == 0


def test_index_info_says_what_an_index_holds_and_build_stays_the_implied_subcommand(tmp_path, articles_jsonl):
    out = tmp_path / "idx"
    assert invoke("index", "build", articles_jsonl, "--out", out, "--quiet").exit_code == 0
    result = invoke("index", "info", out)
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    manifest = json.loads((out / "manifest.json").read_text())
    assert f"{manifest['passages']:,} passages from {manifest['documents']:,} documents" in said
    assert str(articles_jsonl) in said and "jsonl" in said
    assert "bm25: engine bm25s" in said and "dense: none" in said
    assert "on disk:" in said and "passages " in said and "bm25 " in said
    described = json.loads(invoke("index", "info", out, "--json").output)
    assert described["manifest"]["passages"] == manifest["passages"]
    assert described["bytes"]["passages"] == (out / "passages.arrow").stat().st_size
    missing = invoke("index", "info", tmp_path)
    assert missing.exit_code == 2 and "is not an openbook index" in missing.output
