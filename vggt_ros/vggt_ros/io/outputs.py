"""Output folders of the offline tools: checked up front, written beside, moved in when done.

`check_output_dir(OUT)` refuses, with one line (OutputDirError, exit 2 in the CLI), an OUT that is a file,
lies under a file, lies in /proc, /sys or /dev, or cannot be written.

`StagedOutput(OUT, primary, names)` is the one rule for replacing an earlier run's output set:
- the tool writes into a staging folder beside OUT (`.OUT.staging-<pid>`, removed on every way out;
  one left by a killed process is removed by the next run);
- a COMPLETE set is moved into OUT file by file; files of the set's `names` that the new run did not
  produce (e.g. the plots of a scored earlier run) are deleted, so OUT never mixes two runs; an old
  OUT.partial/ (an interrupted run, now superseded) is deleted;
- a PARTIAL set (interrupted) gets a PARTIAL.txt saying why and how far it got. If OUT holds no complete
  set (no `primary` file, or a PARTIAL.txt), the partial set goes into OUT as above; otherwise the
  complete set in OUT is kept untouched and the partial one goes to OUT.partial/ (replacing an older one).
So nothing of a complete earlier run is lost, and a partial set always says so.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

PARTIAL_MARKER = "PARTIAL.txt"
_REFUSED_ROOTS = ("/proc", "/sys", "/dev")


class OutputDirError(ValueError):
    """An output folder that cannot be used (the message is one line for the user)."""


def check_output_dir(out: str | Path) -> Path:
    """OUT as an absolute Path once it is known to be creatable and writable; else OutputDirError."""
    p = Path(os.path.abspath(os.path.expanduser(str(out))))
    for root in _REFUSED_ROOTS:
        if str(p) == root or str(p).startswith(root + "/"):
            raise OutputDirError(f"output folder {out} is inside {root}: pick a folder on a disk")
    if p.exists() and not p.is_dir():
        raise OutputDirError(f"output folder {out} is an existing file, not a folder")
    probe = p
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise OutputDirError(f"output folder {out} lies under {probe}, which is a file")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputDirError(f"output folder {out}: {probe} is not writable")
    return p


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class StagedOutput:
    """See the module docstring. `path` is the staging folder to write into."""

    def __init__(self, out: str | Path, primary: str, names: tuple[str, ...]) -> None:
        self.out = check_output_dir(out)
        self.primary = primary
        self.names = tuple(names)
        try:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self._remove_stale()
            self.path = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.staging-{os.getpid()}-",
                                              dir=self.out.parent))
        except OSError as exc:
            raise OutputDirError(f"output folder {out}: {exc.strerror or exc}") from exc

    @property
    def partial_dir(self) -> Path:
        return self.out.with_name(self.out.name + ".partial")

    def _remove_stale(self) -> None:
        """Staging folders of processes that no longer run (killed with SIGKILL, power loss)."""
        for d in self.out.parent.glob(f".{self.out.name}.staging-*"):
            try:
                pid = int(d.name.rsplit(".staging-", 1)[1].split("-", 1)[0])
            except (IndexError, ValueError):
                continue
            if pid != os.getpid() and not _pid_alive(pid):
                shutil.rmtree(d, ignore_errors=True)

    def has_complete_set(self) -> bool:
        return (self.out / self.primary).is_file() and not (self.out / PARTIAL_MARKER).exists()

    def _move_into(self, target: Path) -> None:
        target.mkdir(parents=True, exist_ok=True)
        produced = {f.name for f in self.path.iterdir()}
        for name in (*self.names, PARTIAL_MARKER):
            if name not in produced:
                (target / name).unlink(missing_ok=True)
        for name in sorted(produced):
            os.replace(self.path / name, target / name)
        self.discard()

    def commit(self, partial_note: str | None = None) -> Path:
        """Move the set into place (complete when partial_note is None); returns the folder it went to."""
        if partial_note is None:
            self._move_into(self.out)
            shutil.rmtree(self.partial_dir, ignore_errors=True)
            return self.out
        (self.path / PARTIAL_MARKER).write_text(partial_note.rstrip() + "\n")
        if not self.has_complete_set():
            self._move_into(self.out)
            return self.out
        shutil.rmtree(self.partial_dir, ignore_errors=True)
        os.replace(self.path, self.partial_dir)
        return self.partial_dir

    def discard(self) -> None:
        """Remove the staging folder (what is still in it is lost)."""
        shutil.rmtree(self.path, ignore_errors=True)
