"""One source of truth: the node's parameter table and the SLAM core's dataclasses agree, and every
declared parameter reaches something (the pipeline config, or a read site in the runtime/node)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from vggt_ros.runtime.factory import pipeline_config
from vggt_ros.runtime.params import PARAMETERS, Params
from vggt_ros.slam.config import PipelineConfig

PKG = Path(__file__).resolve().parents[1] / "vggt_ros"


def _changed_value(spec):
    """A valid value different from the default (in range / a different choice)."""
    d = spec.default
    if spec.type is bool:
        return not d
    if spec.type is str:
        others = [c for c in spec.choices if c != d]
        return others[0] if others else (d + "_x" if d else "x")
    lo, hi = spec.min_value, spec.max_value
    cand = d * 2 if d else 1
    if hi is not None and cand > hi:
        cand = (d + lo) / 2 if spec.type is float else max(lo, d - 1)
    return spec.type(cand)


def test_node_defaults_give_the_slam_defaults_exactly():
    assert pipeline_config(Params()) == PipelineConfig()


def test_pipeline_config_defaults_are_the_ones_the_bench_and_node_run():
    """The bench runs PipelineConfig(); the node runs pipeline_config(Params()): same object."""
    a, b = dataclasses.asdict(pipeline_config(Params())), dataclasses.asdict(PipelineConfig())
    diffs = {k: (a[k], b[k]) for k in a if a[k] != b[k]}
    assert not diffs


def _read_sites() -> str:
    """Source of every module that reads parameters, minus the table itself."""
    files = [p for p in PKG.rglob("*.py") if p.name != "params.py"]
    files += list((PKG.parent / "launch").glob("*.py"))
    return "\n".join(p.read_text() for p in files)


@pytest.mark.parametrize("spec", PARAMETERS, ids=lambda s: s.name)
def test_every_parameter_reaches_something(spec):
    base = pipeline_config(Params())
    changed = pipeline_config(Params().replace(**{spec.name: _changed_value(spec)}))
    if changed != base:
        return  # it reaches the SLAM core
    src = _read_sites()
    # otherwise the runtime or the node must read it by name
    assert re.search(rf"""\[["']{re.escape(spec.name)}["']\]""", src), (
        f"parameter {spec.name!r} is declared but nothing reads it"
    )


SUB_CONFIGS = ("keyframes", "stitch", "map", "recovery", "loop", "scale")


def _fields(cls, prefix=""):
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(f.type) or f.name in SUB_CONFIGS:
            sub = getattr(PipelineConfig(), f.name, None)
            if dataclasses.is_dataclass(sub):
                yield from _fields(type(sub), f"{prefix}{f.name}.")
                continue
        yield prefix + f.name


@pytest.mark.parametrize("name", list(_fields(PipelineConfig)))
def test_every_slam_setting_is_read_by_the_core(name):
    """A PipelineConfig field that no slam module reads is a setting that reaches nothing."""
    leaf = name.rsplit(".", 1)[-1]
    src = "\n".join(p.read_text() for p in (PKG / "slam").glob("*.py") if p.name != "config.py")
    assert re.search(rf"\.{leaf}\b", src), f"slam setting {name} is never read"


def test_map_voxel_setting_reaches_the_global_map():
    from vggt_ros.slam.pipeline import Pipeline

    cfg = PipelineConfig()
    cfg.map.voxel_size_rel = 0.05
    p = Pipeline(predictor=None, config=cfg)  # type: ignore[arg-type]
    assert p.global_map.voxel_size_rel == 0.05
