"""io/outputs.py (staged output sets), io/progress.py (no bar off a terminal), io/interrupt.py."""

from __future__ import annotations

import io
import os
import signal
from pathlib import Path

import pytest
from vggt_ros.io.interrupt import stop_on_signals
from vggt_ros.io.outputs import PARTIAL_MARKER, OutputDirError, StagedOutput, check_output_dir
from vggt_ros.io.progress import Progress

NAMES = ("out.mcap", "report.json", "plot.png")


def _stage(out: Path, files: dict[str, str]) -> StagedOutput:
    st = StagedOutput(out, "out.mcap", NAMES)
    for name, text in files.items():
        (st.path / name).write_text(text)
    return st


def test_complete_set_replaces_the_old_one_whole(tmp_path):
    out = tmp_path / "o"
    _stage(out, {"out.mcap": "1", "report.json": "1", "plot.png": "1"}).commit()
    (out / "mine.txt").write_text("user file")
    _stage(out, {"out.mcap": "2", "report.json": "2"}).commit()  # run 2 was not scored: no plot
    assert (out / "out.mcap").read_text() == "2" and not (out / "plot.png").exists()
    assert (out / "mine.txt").read_text() == "user file"  # files outside the set are not touched
    assert [p.name for p in tmp_path.iterdir()] == ["o"]  # no staging folder left


def test_partial_set_never_replaces_a_complete_one(tmp_path):
    out = tmp_path / "o"
    where = _stage(out, {"out.mcap": "partial-1"}).commit("stopped at 3")
    assert where == out and (out / PARTIAL_MARKER).read_text() == "stopped at 3\n"  # nothing complete yet
    _stage(out, {"out.mcap": "full", "report.json": "full"}).commit()
    assert not (out / PARTIAL_MARKER).exists()
    where = _stage(out, {"out.mcap": "partial-2"}).commit("stopped at 5")
    assert where == tmp_path / "o.partial" and (where / "out.mcap").read_text() == "partial-2"
    assert (out / "out.mcap").read_text() == "full"
    _stage(out, {"out.mcap": "full-2", "report.json": "x"}).commit()  # a complete run supersedes the partial
    assert not (tmp_path / "o.partial").exists()


def test_staging_of_a_dead_process_is_removed(tmp_path):
    stale = tmp_path / ".o.staging-999999999-abc"
    stale.mkdir()
    st = StagedOutput(tmp_path / "o", "out.mcap", NAMES)
    assert not stale.exists()
    st.discard()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["file", "under_file", "proc", "sys"])
def test_bad_output_folders_are_refused(tmp_path, kind):
    f = tmp_path / "f"
    f.write_text("x")
    path = {"file": f, "under_file": f / "a" / "b", "proc": Path("/proc/x"), "sys": Path("/sys")}[kind]
    with pytest.raises(OutputDirError):
        check_output_dir(path)


def test_progress_writes_lines_not_a_bar_off_a_terminal():
    buf = io.StringIO()  # not a TTY
    p = Progress(100, "replay", stream=buf)
    for _ in range(100):
        p.update(1, processed=1)
    p.close(processed=100)
    lines = buf.getvalue().splitlines()
    assert "\r" not in buf.getvalue() and len(lines) == 11
    assert lines[0] == "replay: 10/100 frames, processed=1"
    assert lines[-1] == "replay: 100/100 frames, processed=100"  # the flushed window counted at the end


def test_first_signal_is_a_request():
    with stop_on_signals() as stop:
        assert not stop()
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop() and stop.exit_code == 143 and stop.name == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_version_flag(capsys):
    from vggt_ros.cli import main

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.startswith("vggt-ros ")
