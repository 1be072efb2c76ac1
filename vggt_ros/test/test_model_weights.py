"""Checkpoint loading: strict keys/shapes, no pickle execution, checksum, truncation, offline errors."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from vggt_ros.model.tracker import EfficientUpdateFormer
from vggt_ros.model.weights import (
    KNOWN_CHECKPOINTS,
    ChecksumError,
    ModelSource,
    StateDictMismatchError,
    WeightsFileError,
    WeightsOfflineError,
    load_weights,
    read_state_dict,
    sha256_file,
)


def tiny_model(seed: int = 0) -> torch.nn.Module:
    """A small module with the same kinds of parameters as VGGT (Linear, LayerNorm, MHA in_proj)."""
    torch.manual_seed(seed)
    m = EfficientUpdateFormer(
        space_depth=1, time_depth=1, input_dim=8, hidden_size=16, num_heads=2, output_dim=4,
        num_virtual_tracks=4,
    )
    for p in m.parameters():
        torch.nn.init.uniform_(p, -1.0, 1.0)
    return m


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_local_roundtrip_and_checksum(tmp_path: Path, suffix: str) -> None:
    src = tiny_model(0)
    path = tmp_path / f"w{suffix}"
    sd = {k: v.contiguous() for k, v in src.state_dict().items()}
    torch.save(sd, path) if suffix == ".pt" else save_file(sd, str(path))
    dst = tiny_model(1)
    assert not _same(src, dst)
    report = load_weights(dst, ModelSource(path=str(path), sha256=sha256_file(path)))
    assert _same(src, dst)
    assert report.num_tensors == len(sd) and report.sha256 == sha256_file(path)
    with pytest.raises(ChecksumError, match="SHA-256"):
        load_weights(dst, ModelSource(path=str(path), sha256="0" * 64))


def test_half_precision_file_loads_as_model_dtype(tmp_path: Path) -> None:
    src = tiny_model(0)
    path = tmp_path / "half.safetensors"
    save_file({k: v.half().contiguous() for k, v in src.state_dict().items()}, str(path))
    with torch.device("meta"):
        meta = tiny_model(1)
    load_weights(meta, str(path), assign=True)
    w = meta.state_dict()["flow_head.weight"]
    assert w.dtype == torch.float32 and w.device.type == "cpu"
    torch.testing.assert_close(w, src.state_dict()["flow_head.weight"], atol=1e-3, rtol=1e-3)


def test_renamed_and_reshaped_keys_are_listed(tmp_path: Path) -> None:
    sd = dict(tiny_model(0).state_dict())
    sd["virtual_tracks"] = sd.pop("virual_tracks")  # the "fixed" spelling is NOT the checkpoint's
    sd["flow_head.weight"] = torch.zeros(5, 16)
    sd["extra.bias"] = torch.zeros(3)
    path = tmp_path / "bad.pt"
    torch.save(sd, path)
    model = tiny_model(1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(StateDictMismatchError) as info:
        load_weights(model, str(path))
    err = info.value
    assert err.missing == ["virual_tracks"]
    assert err.unexpected == ["extra.bias", "virtual_tracks"]
    assert err.mismatched == [("flow_head.weight", (4, 16), (5, 16))]
    assert "virual_tracks" in str(err) and "extra.bias" in str(err) and "(5, 16)" in str(err)
    # Refused before anything was copied.
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_truncated_safetensors_lists_cut_tensors(tmp_path: Path) -> None:
    sd = {k: v.contiguous() for k, v in tiny_model(0).state_dict().items()}
    path = tmp_path / "w.safetensors"
    save_file(sd, str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 4000])
    with pytest.raises(StateDictMismatchError) as info:
        load_weights(tiny_model(1), ModelSource(path=str(path)))
    cut = info.value.truncated
    assert 0 < len(cut) < len(sd)
    assert set(cut) <= set(sd)
    assert "truncation" in str(info.value)


def test_truncated_pt_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "w.pt"
    torch.save(tiny_model(0).state_dict(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsFileError, match="truncated or corrupt"):
        load_weights(tiny_model(1), str(path))


class _Evil:
    def __reduce__(self):  # pragma: no cover - must never run
        return (os.system, ("echo pwned > /dev/null",))


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_pickled_code_is_not_executed(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        pickle.dump({"w": _Evil()}, fh)
    with pytest.raises(WeightsFileError):
        read_state_dict(path)


def test_missing_file() -> None:
    with pytest.raises(WeightsFileError, match="does not exist"):
        load_weights(tiny_model(), ModelSource(path="/nonexistent/model.pt"))


def test_parse_spec() -> None:
    s = ModelSource.parse("facebook/VGGT-1B@0123456789abcdef0123456789abcdef01234567")
    assert s.repo_id == "facebook/VGGT-1B" and s.revision.startswith("0123") and s.hub_filename == "model.pt"
    assert ModelSource.parse("facebook/VGGT-1B-Commercial").revision == "main"
    assert ModelSource.parse("/data/model.safetensors").path == "/data/model.safetensors"
    assert "CC BY-NC 4.0" in KNOWN_CHECKPOINTS["facebook/VGGT-1B"].licence
    with pytest.raises(ValueError):
        ModelSource()


def _assert_actionable(msg: str, repo: str, cache: Path) -> None:
    assert repo in msg
    assert str(cache) in msg
    # the CLI flag, the parameter, the CLI the .venv really has, and the no-weights way out
    # (old message: `huggingface-cli download`, `ModelSource(path=...)`, no --weights, no simulated)
    assert "--weights " in msg and "weights_path" in msg
    assert f"`hf download {repo} model.pt --revision " in msg and "huggingface-cli" not in msg
    assert "--predictor simulated" in msg
    if repo == "facebook/VGGT-1B":
        assert "CC BY-NC 4.0" in msg


@pytest.mark.parametrize("mode", ["offline_env", "unreachable_endpoint"])
def test_offline_hub_fails_fast_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    cache = tmp_path / "hub"
    if mode == "offline_env":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    src = ModelSource(repo_id="facebook/VGGT-1B", revision="main", cache_dir=str(cache))
    t0 = time.perf_counter()
    with pytest.raises(WeightsOfflineError) as info:
        load_weights(tiny_model(), src)
    assert time.perf_counter() - t0 < 1.0
    _assert_actionable(str(info.value), "facebook/VGGT-1B", cache)


_CHILD = """
import sys, time
from vggt_ros.model.weights import ModelSource, WeightsOfflineError, load_weights
from vggt_ros.model.tracker import CorrBlock  # noqa: F401  (import cost outside the timing)
import torch
t0 = time.perf_counter()
try:
    load_weights(torch.nn.Linear(2, 2), ModelSource.parse(sys.argv[1]))
except WeightsOfflineError as exc:
    print(f"{time.perf_counter() - t0:.3f}")
    print(exc)
    sys.exit(0)
sys.exit(3)
"""


@pytest.mark.slow  # a fresh interpreter imports torch: ~10 s on a loaded 2-core CPU
@pytest.mark.parametrize(
    "env",
    [{"HF_HUB_OFFLINE": "1"}, {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "0"}],
    ids=["HF_HUB_OFFLINE", "HF_ENDPOINT_unreachable"],
)
def test_offline_hub_fails_fast_subprocess(tmp_path: Path, env: dict[str, str]) -> None:
    """The environment variables as a user sets them (huggingface_hub reads them at import)."""
    cache = tmp_path / "hf_home" / "hub"
    full_env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), **env}
    full_env.pop("HF_HUB_CACHE", None)
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, "facebook/VGGT-1B-Commercial@main"],
        env=full_env, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    seconds, message = out.stdout.split("\n", 1)
    assert float(seconds) < 1.0
    _assert_actionable(message, "facebook/VGGT-1B-Commercial", cache)


def _fake_hub_cache(cache: Path, repo: str, commit: str, state: dict) -> Path:
    """The hub cache layout huggingface_hub reads: snapshots/<commit>/<file> + refs/main."""
    repo_dir = cache / ("models--" + repo.replace("/", "--"))
    snap = repo_dir / "snapshots" / commit
    snap.mkdir(parents=True)
    torch.save(state, snap / "model.pt")
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(commit)
    return snap / "model.pt"


@pytest.mark.parametrize("revision", ["main", "c0ffee" * 6 + "c0ff"])
def test_cached_checkpoint_loads_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, revision: str
) -> None:
    commit = "c0ffee" * 6 + "c0ff"
    src_model = tiny_model(0)
    path = _fake_hub_cache(tmp_path / "hub", "facebook/VGGT-1B", commit, src_model.state_dict())
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    dst = tiny_model(1)
    report = load_weights(dst, ModelSource(repo_id="facebook/VGGT-1B", revision=revision,
                                           cache_dir=str(tmp_path / "hub")))
    assert Path(report.path).resolve() == path.resolve()
    assert _same(src_model, dst)


def test_pinned_cached_revision_skips_the_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    _fake_hub_cache(tmp_path / "hub", "facebook/VGGT-1B", commit, tiny_model(0).state_dict())
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # would fail if contacted
    dst = tiny_model(1)
    src = ModelSource(repo_id="facebook/VGGT-1B", revision=commit, cache_dir=str(tmp_path / "hub"))
    load_weights(dst, src)
    assert _same(tiny_model(0), dst)


def test_full_vggt_layout_is_checked_strictly(shared_fixtures: Path) -> None:
    """The released checkpoint's 1797 keys pass the strict check of VGGT(); one key off is listed."""
    from vggt_ros.model.formula_weights import read_shapes
    from vggt_ros.model.vggt import VGGT
    from vggt_ros.model.weights import check_state_dict

    with torch.device("meta"):
        model = VGGT()
        state = {k: torch.empty(s) for k, s in read_shapes(shared_fixtures / "state_dict_shapes.txt").items()}
    assert len(state) == 1797
    check_state_dict(model, state, "model.pt")
    state["track_head.tracker.updateformer.virtual_tracks"] = state.pop(
        "track_head.tracker.updateformer.virual_tracks"
    )
    with pytest.raises(StateDictMismatchError) as info:
        check_state_dict(model, state, "model.pt")
    assert info.value.missing == ["track_head.tracker.updateformer.virual_tracks"]
    assert info.value.unexpected == ["track_head.tracker.updateformer.virtual_tracks"]
