"""One builder per index folder (`index.lock`): a second one is refused, naming the first; a lock left
by a killed builder is taken over; two real `openbook index --overwrite` at once never mix their parts."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading

import pytest

from openbook.errors import OpenbookError
from openbook.index.build import build_index
from openbook.index.lock import build_lock, lock_path
from openbook.index.store import PassageStore
from openbook.index.verify import verify_index
from tests.conftest import write_jsonl
from tests.index.build_process import HARNESS, ROOT


def test_a_second_builder_is_refused_naming_the_first_then_takes_over_once_it_is_killed(
    tmp_path, articles_jsonl, capsys
):
    out = tmp_path / "index"
    holder = subprocess.Popen(
        [sys.executable, str(HARNESS), "holding", "0", str(out)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        with pytest.raises(OpenbookError) as refused:
            build_index([articles_jsonl], out, show_progress=False)
        message = str(refused.value)
        assert f"{out} is being built by another `openbook index` (pid {holder.pid} on " in message
        assert "started 20" in message and "stop it and run your command again (it resumes" in message
        assert not out.exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert json.loads(lock_path(out).read_text())["pid"] == holder.pid  # left behind by the kill
    build_index([articles_jsonl], out, show_progress=False)
    said = " ".join(capsys.readouterr().err.split())
    assert f"taking over the lock of {out} left by pid {holder.pid}" in said and "(no longer running)" in said
    assert not lock_path(out).exists()  # released with the build
    assert not verify_index(out).problems


def test_the_lock_is_exclusive_between_threads_of_one_process_too(tmp_path):
    """flock locks belong to open files, not processes: a second open in the same process is refused."""
    target = tmp_path / "index"
    entered = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with build_lock(target):
            entered.set()
            release.wait(30)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert entered.wait(30)
        with pytest.raises(OpenbookError, match="is being built by another"):
            with build_lock(target):
                pass
    finally:
        release.set()
        thread.join()
    with build_lock(target):  # released
        pass


def test_two_builders_at_once_never_mix_their_indexes(tmp_path):
    """Two real `openbook index --overwrite` of other corpora started together: each either builds
    or is refused by the lock, and the index left is one of them, whole, with its own passages."""
    corpora = {}
    for name in ("left", "right"):
        corpora[name] = write_jsonl(
            tmp_path / f"{name}.jsonl",
            [{"id": f"{name}{i}", "title": name, "text": f"The {name} article number {i}."} for i in range(200)],
        )
    out = tmp_path / "index"
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                str(HARNESS),
                "none",
                "0",
                "index",
                str(path),
                "--out",
                str(out),
                "--overwrite",
                "--quiet",
            ],
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for path in corpora.values()
    ]
    outcomes = [(process.wait(600), process.stderr.read() if process.stderr else "") for process in processes]
    for code, stderr in outcomes:
        assert code == 0 or (code == 2 and "is being built by another `openbook index`" in " ".join(stderr.split()))
    assert not verify_index(out).problems
    manifest = json.loads((out / "manifest.json").read_text())
    (built_from,) = [name for name, path in corpora.items() if manifest["inputs"][0]["path"] == str(path)]
    assert {p.doc_id.rstrip("0123456789") for batch in PassageStore(out).iter_batches() for p in batch} == {built_from}
