"""Atomic file writes: a temp file beside the target, fsync, then rename over it.

A reader (or a crash) sees either the old file or the new one, never a torn one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically; the file gets the usual 0666 & ~umask permissions."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs are as readable as any written file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Text (UTF-8) flavour of atomic_write_bytes."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def fsync_dir(d: str | os.PathLike) -> None:
    """fsync a directory (its entries survive a crash); silently skipped where the OS refuses."""
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_replace_dir(target: str | os.PathLike, fill: Callable[[Path], None]) -> Path:
    """Build a directory with `fill(tmp_dir)` beside `target`, then swap it in by rename.

    A failed or interrupted `fill` leaves the previous `target` untouched and no temp directory
    behind. Between the two renames of a replacement the previous content sits in
    `.<name>.old-*` beside the target (`recover_dir` finds it). Returns the resolved target.
    """
    target = Path(target).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        fill(tmp)
        fsync_dir(tmp)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.rmdir(old)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
        fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def recover_dir(target: str | os.PathLike, marker: str) -> Path | None:
    """`target` if it holds `marker`, else the newest `.<name>.old-*` beside it that does (a swap
    stopped between its renames), else None."""
    d = Path(target).resolve()
    if (d / marker).is_file():
        return d
    olds = sorted(d.parent.glob(f".{d.name}.old-*"))
    return olds[-1] if olds and (olds[-1] / marker).is_file() else None
