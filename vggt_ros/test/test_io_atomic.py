"""Atomic writes: readable permissions, and a failed write leaves the previous file intact."""

from __future__ import annotations

import os
import stat

import pytest
from vggt_ros.io import atomic
from vggt_ros.io.atomic import atomic_write_bytes, atomic_write_text


def test_permissions_follow_umask(tmp_path):
    old = os.umask(0o022)
    try:
        p = atomic_write_text(tmp_path / "a.txt", "hello")
    finally:
        os.umask(old)
    assert p.read_text() == "hello"
    assert stat.S_IMODE(p.stat().st_mode) == 0o644


def test_failure_keeps_previous_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "map.ply"
    atomic_write_bytes(target, b"old")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["map.ply"]
