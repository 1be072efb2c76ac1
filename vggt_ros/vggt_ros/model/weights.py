"""Checkpoint loading for VGGT: local file or Hugging Face hub, strict, no pickle execution.

Sources
- a local file: ``.safetensors`` (safetensors) or ``.pt`` / ``.pth`` / ``.bin`` (``torch.load``
  with ``weights_only=True``, so no pickled code runs);
- a hub id + revision, downloaded once through ``huggingface_hub.hf_hub_download`` into the
  hub cache. Pin ``revision`` to a commit hash for reproducible runs; a pinned revision that is
  already cached is used without touching the network.

Offline behaviour: with ``HF_HUB_OFFLINE=1`` or an unreachable endpoint (probed with a short
TCP connect before the hub client, whose own retries take ~20 s) only the cache is used, and a
miss raises `WeightsOfflineError` within about a second, naming the id, the cache path and how
to pass a local file instead.

Checks: every key and shape of the model must be in the file and nothing else
(`StateDictMismatchError` lists missing / unexpected / mismatched keys); an optional SHA-256 of
the file; a truncated safetensors file lists the tensors whose bytes are missing.

Licences of the released checkpoints (read the model cards before use):
- ``facebook/VGGT-1B`` (file ``model.pt``): CC BY-NC 4.0, non-commercial use only (the training
  data's terms; the code in facebookresearch/vggt has its own licence).
- ``facebook/VGGT-1B-Commercial``: a gated repository (accept the terms on the hub, then log in
  or set ``HF_TOKEN``) under Meta's own VGGT licence, which permits commercial use under its terms
  (with use restrictions listed there).
Neither checkpoint is redistributed by vggt_ros; each user downloads it under those terms.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import socket
import struct
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from huggingface_hub import constants as hf_constants
from huggingface_hub import errors as hf_errors
from huggingface_hub import hf_hub_download, try_to_load_from_cache

if TYPE_CHECKING:  # torch is imported where tensors are read: the spec guess stays light for launch files
    import torch
    from torch import nn

LOG = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://huggingface.co"
_TRUE = {"1", "ON", "YES", "TRUE"}
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class CheckpointInfo:
    """What vggt_ros knows about a released checkpoint on the hub."""

    repo_id: str
    filename: str
    licence: str
    gated: bool


KNOWN_CHECKPOINTS: dict[str, CheckpointInfo] = {
    "facebook/VGGT-1B": CheckpointInfo(
        "facebook/VGGT-1B", "model.pt", "CC BY-NC 4.0 (non-commercial use only)", gated=False
    ),
    "facebook/VGGT-1B-Commercial": CheckpointInfo(
        "facebook/VGGT-1B-Commercial",
        "model.pt",
        "VGGT licence (gated; commercial use permitted under its terms)",
        gated=True,
    ),
}


class WeightsError(RuntimeError):
    """Base class: the weights could not be loaded."""


class WeightsOfflineError(WeightsError):
    """The hub is unreachable (or offline mode is set) and the file is not in the cache."""


class WeightsFileError(WeightsError):
    """The file is missing, unreadable, truncated, or not a checkpoint of tensors."""


class ChecksumError(WeightsError):
    """The file's SHA-256 differs from the expected one."""


class StateDictMismatchError(WeightsError):
    """The checkpoint's keys/shapes differ from the model's.

    missing: keys the model needs that the file lacks; unexpected: keys in the file the model
    does not have; mismatched: (key, model shape, file shape).
    """

    def __init__(
        self,
        source: str,
        missing: list[str],
        unexpected: list[str],
        mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]],
        truncated: list[str] | None = None,
    ) -> None:
        self.source = source
        self.missing = missing
        self.unexpected = unexpected
        self.mismatched = mismatched
        self.truncated = truncated or []
        super().__init__(self._message())

    def _message(self, limit: int = 20) -> str:
        def fmt(items: list, what: str) -> str:
            shown = ", ".join(str(i) for i in items[:limit])
            more = f" ... (+{len(items) - limit} more)" if len(items) > limit else ""
            return f"\n  {len(items)} {what}: {shown}{more}"

        msg = f"checkpoint {self.source} does not match the model (strict load refused):"
        if self.truncated:
            msg += fmt(self.truncated, "tensors cut off by truncation (file incomplete: re-download it)")
        if self.missing:
            msg += fmt(self.missing, "missing keys")
        if self.unexpected:
            msg += fmt(self.unexpected, "unexpected keys")
        if self.mismatched:
            msg += fmt([f"{k} model{m} file{f}" for k, m, f in self.mismatched], "shape mismatches")
        return msg


CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")
DEFAULT_REVISION = "main"  # the hub's default branch when a spec names no revision
_HUB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*(@[^\s/]+)?$")


def is_local_weights_spec(spec: str) -> bool:
    """True when a weights spec names a local file, False for a hub id ('org/name[@rev]').

    The only place vggt_ros makes this guess (the launch file's `model:=` and the loader both ask
    here). A spec is a path when it exists (relative to the working directory or with '~'), starts
    with '/', './', '../' or '~', or ends with a checkpoint suffix (.pt .pth .bin .safetensors).
    It is a hub id only when it does not exist and reads 'org/name' with an optional '@revision';
    anything else (e.g. 'models/vggt/x' or a bare 'model') is taken as a path, so it fails as a
    missing file instead of a confusing hub lookup.
    """
    s = spec.strip()
    if os.path.exists(os.path.expanduser(s)):
        return True
    if s.startswith(("/", "./", "../", "~")) or s == "." or s == "..":
        return True
    if s.partition("@")[0].lower().endswith(CHECKPOINT_SUFFIXES):
        return True
    return _HUB_ID_RE.match(s) is None


@dataclass(frozen=True)
class ModelSource:
    """Where the weights come from: a local ``path``, or a hub ``repo_id`` at ``revision``.

    sha256: optional expected hex digest of the file. filename: defaults to the known file of
    ``repo_id`` (``model.pt``). endpoint/cache_dir: default to HF_ENDPOINT / the hub cache.
    """

    repo_id: str | None = None
    revision: str = "main"
    filename: str | None = None
    path: str | None = None
    sha256: str | None = None
    cache_dir: str | None = None
    endpoint: str | None = None
    token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if (self.repo_id is None) == (self.path is None):
            raise ValueError("ModelSource needs exactly one of repo_id or path")

    @classmethod
    def parse(cls, spec: str, sha256: str | None = None) -> ModelSource:
        """'facebook/VGGT-1B@<revision>' or 'facebook/VGGT-1B' (hub), else a local file path
        (`is_local_weights_spec` is the one rule)."""
        s = spec.strip()
        if is_local_weights_spec(s):
            return cls(path=os.path.expanduser(s), sha256=sha256)
        repo, _, rev = s.partition("@")
        return cls(repo_id=repo, revision=rev or DEFAULT_REVISION, sha256=sha256)

    @property
    def hub_filename(self) -> str:
        if self.filename:
            return self.filename
        info = KNOWN_CHECKPOINTS.get(self.repo_id or "")
        return info.filename if info else "model.pt"

    def describe(self) -> str:
        if self.path is not None:
            return self.path
        return f"{self.repo_id}@{self.revision}:{self.hub_filename}"


# --------------------------------------------------------------------------- hub


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in _TRUE


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE (read now, not at import) or huggingface_hub's own flag is set."""
    if _env_true("HF_HUB_OFFLINE"):
        return True
    return bool(getattr(hf_constants, "HF_HUB_OFFLINE", False))


def hub_endpoint(source: ModelSource | None = None) -> str:
    if source is not None and source.endpoint:
        return source.endpoint.rstrip("/")
    env = os.environ.get("HF_ENDPOINT")
    if env:
        return env.rstrip("/")
    return str(getattr(hf_constants, "ENDPOINT", DEFAULT_ENDPOINT)).rstrip("/")


def hub_cache_dir(source: ModelSource | None = None) -> str:
    if source is not None and source.cache_dir:
        return source.cache_dir
    env = os.environ.get("HF_HUB_CACHE")
    if env:
        return env
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return str(hf_constants.HF_HUB_CACHE)


def endpoint_reachable(endpoint: str, timeout_s: float = 0.5) -> tuple[bool, str]:
    """TCP-connect probe of the endpoint (name resolution included) bounded by timeout_s."""
    url = urlparse(endpoint)
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    result: list[str | None] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                result.append(None)
        except OSError as exc:
            result.append(f"{type(exc).__name__}: {exc}")

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout_s + 0.05)
    if not result:
        return False, f"no answer from {host}:{port} within {timeout_s:.1f} s"
    return result[0] is None, result[0] or ""


def download_command(source: ModelSource) -> str:
    """The `hf download` command (huggingface_hub's CLI, in the project's .venv) that fetches source."""
    return f"hf download {source.repo_id} {source.hub_filename} --revision {source.revision}"


def weights_help(source: ModelSource, mention_simulated: bool = True) -> str:
    """How to get the weights: the download command, the --weights flag / weights_path, the licence."""
    fname = source.hub_filename
    info = KNOWN_CHECKPOINTS.get(source.repo_id or "")
    licence = f" Licence of {source.repo_id}: {info.licence}." if info else ""
    return (
        f"Download it once where the hub is reachable: `{download_command(source)}` (then copy the hub "
        f"cache here or set HF_HUB_CACHE), or pass a local file: `--weights /path/to/{fname}` "
        f"(vggt-ros replay) / the weights_path parameter (node, launch model:=/path/to/{fname}).{licence}"
        + (" Without weights, `--predictor simulated` runs the pipeline on a test double (sample bags only)."
           if mention_simulated else "")
    )


def _offline_message(source: ModelSource, why: str) -> str:
    return (
        f"cannot get VGGT weights {source.repo_id} (revision {source.revision}, file {source.hub_filename}): "
        f"{why}, and the file is not in the hub cache at {hub_cache_dir(source)}. {weights_help(source)}"
    )


def resolve_file(source: ModelSource, probe_timeout_s: float = 0.5, etag_timeout_s: float = 10.0) -> Path:
    """The local path of the checkpoint, downloading it from the hub if needed."""
    if source.path is not None:
        p = Path(source.path).expanduser()
        if not p.is_file():
            raise WeightsFileError(f"checkpoint file {p} does not exist (or is not a file); check --weights "
                                   "/ weights_path, or pass --predictor simulated to run without weights")
        return p
    repo_id = source.repo_id
    assert repo_id is not None
    endpoint = hub_endpoint(source)
    cache_dir = hub_cache_dir(source)

    def from_cache() -> Path | None:
        # Purely local lookup: hf_hub_download(local_files_only=True) still builds request
        # headers, which may contact the hub (up to 3 s) unless HF_HUB_OFFLINE was set at import.
        try:
            hit = try_to_load_from_cache(
                repo_id, source.hub_filename, cache_dir=cache_dir, revision=source.revision
            )
        except (OSError, ValueError):
            return None
        return Path(hit) if isinstance(hit, str) else None

    if not _COMMIT_RE.match(source.revision):
        LOG.warning(
            "weights %s use the moving revision %r; pin a commit hash for reproducible runs",
            source.repo_id,
            source.revision,
        )
    if hub_offline():
        cached = from_cache()
        if cached is None:
            raise WeightsOfflineError(_offline_message(source, "offline mode is set (HF_HUB_OFFLINE)"))
        return cached
    if _COMMIT_RE.match(source.revision):
        cached = from_cache()
        if cached is not None:
            return cached
    ok, why = endpoint_reachable(endpoint, probe_timeout_s)
    if not ok:
        cached = from_cache()
        if cached is None:
            why = f"the hub at {endpoint} is unreachable ({why})"
            raise WeightsOfflineError(_offline_message(source, why))
        LOG.warning("hub %s unreachable (%s); using the cached %s", endpoint, why, cached)
        return cached
    try:
        path = hf_hub_download(
            repo_id,
            source.hub_filename,
            revision=source.revision,
            cache_dir=cache_dir,
            endpoint=endpoint,
            token=source.token,
            etag_timeout=etag_timeout_s,
        )
        return Path(str(path))
    except hf_errors.GatedRepoError as exc:
        raise WeightsError(
            f"{source.repo_id} is gated: accept its licence on {endpoint}/{source.repo_id}, then "
            f"`hf auth login` or set HF_TOKEN ({exc})"
        ) from exc
    except (hf_errors.RepositoryNotFoundError, hf_errors.RevisionNotFoundError) as exc:
        raise WeightsError(f"{source.describe()} not found on {endpoint}: {exc}") from exc
    except hf_errors.EntryNotFoundError as exc:  # includes LocalEntryNotFoundError (network lost)
        if isinstance(exc, hf_errors.LocalEntryNotFoundError):
            raise WeightsOfflineError(_offline_message(source, f"download failed ({exc})")) from exc
        raise WeightsError(f"{source.describe()}: file not in the repository ({exc})") from exc


# --------------------------------------------------------------------------- files


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _safetensors_truncation(path: Path) -> tuple[list[str], list[str]] | None:
    """(complete keys, cut-off keys) of a safetensors file from its header, or None if unreadable."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return None
            (n,) = struct.unpack("<Q", head)
            if n > 100_000_000 or 8 + n > size:
                return None
            header = json.loads(fh.read(n))
    except (OSError, ValueError):
        return None
    base = 8 + n
    complete: list[str] = []
    cut: list[str] = []
    for key, meta in header.items():
        if key == "__metadata__":
            continue
        end = base + int(meta["data_offsets"][1])
        (complete if end <= size else cut).append(key)
    return complete, cut


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file, on CPU, without executing pickled code.

    Raises WeightsFileError (unreadable / corrupt) or StateDictMismatchError (truncated
    safetensors: the tensors whose bytes are missing are listed).
    """
    import torch

    p = Path(path)
    if not p.is_file():
        raise WeightsFileError(f"checkpoint file {p} does not exist")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        info = _safetensors_truncation(p)
        if info is not None and info[1]:
            raise StateDictMismatchError(str(p), [], [], [], truncated=sorted(info[1]))
        try:
            return load_file(str(p), device="cpu")
        except Exception as exc:
            raise WeightsFileError(
                f"{p} is not a readable safetensors file ({p.stat().st_size} bytes): {exc}. "
                "It may be truncated or corrupt: re-download it."
            ) from exc
    try:
        try:
            obj = torch.load(str(p), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsFileError(
            f"{p} is not a readable torch checkpoint ({p.stat().st_size} bytes; loaded with "
            f"weights_only=True): {type(exc).__name__}: {str(exc)[:300]}. It may be truncated or "
            "corrupt (re-download it), or contain pickled objects other than tensors (refused)."
        ) from exc
    if isinstance(obj, Mapping) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        for wrapper in ("state_dict", "model"):
            inner = obj.get(wrapper)
            if isinstance(inner, Mapping) and all(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsFileError(f"{p} does not hold a flat mapping of name -> tensor")
    return dict(obj)


def check_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Raise StateDictMismatchError unless state has exactly the model's keys and shapes."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    missing = sorted(k for k in expected if k not in got)
    unexpected = sorted(k for k in got if k not in expected)
    mismatched = sorted((k, expected[k], got[k]) for k in expected if k in got and expected[k] != got[k])
    if missing or unexpected or mismatched:
        raise StateDictMismatchError(source, missing, unexpected, mismatched)


@dataclass(frozen=True)
class LoadReport:
    """What was loaded: the file, its size, SHA-256 (when checked), tensors, seconds."""

    path: str
    size_bytes: int
    sha256: str | None
    num_tensors: int
    seconds: float


def load_weights(
    model: nn.Module, source: ModelSource | str, *, assign: bool = False, **resolve_kwargs: float
) -> LoadReport:
    """Resolve, verify and strictly load a checkpoint into ``model`` (in place).

    assign=True adopts the file's tensors instead of copying (use it for a model built on the
    meta device: no second copy of the 5 GB of weights).
    """
    if isinstance(source, str):
        source = ModelSource.parse(source)
    t0 = time.perf_counter()
    path = resolve_file(source, **resolve_kwargs)
    digest = None
    if source.sha256:
        digest = sha256_file(path)
        if digest.lower() != source.sha256.lower():
            raise ChecksumError(
                f"{path}: SHA-256 {digest} differs from the expected {source.sha256} "
                "(truncated, corrupt or a different checkpoint: re-download it)"
            )
    state = read_state_dict(path)
    check_state_dict(model, state, source.describe())
    # A half-precision file still loads into an fp32 model (with assign=True the file's dtype
    # would otherwise leak into the model).
    want = {k: v.dtype for k, v in model.state_dict().items()}
    state = {k: v if v.dtype == want[k] else v.to(want[k]) for k, v in state.items()}
    model.load_state_dict(state, strict=True, assign=assign)
    info = KNOWN_CHECKPOINTS.get(source.repo_id or "")
    if info is not None:
        LOG.info("loaded %s; licence: %s", source.describe(), info.licence)
    return LoadReport(str(path), path.stat().st_size, digest, len(state), time.perf_counter() - t0)
