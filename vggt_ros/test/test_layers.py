"""Import layering (docs/architecture.md#layers): ros > runtime > eval > io > msgs > slam / model / sim >
geometry (types.py sits with geometry). A module imports only its own layer or below; slam, model and sim
do not import one another; rclpy only under ros/. Checked on the source's import statements."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "vggt_ros"
RANK = {"geometry": 0, "types": 0, "slam": 1, "model": 1, "sim": 1, "msgs": 2, "io": 3, "eval": 4,
        "runtime": 5, "ros": 6, "cli": 7}
PEERS_APART = {"slam", "model", "sim"}


def _layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "vggt_ros" or len(parts) < 2:
        return None
    return parts[1]


def _imports(path: Path) -> list[tuple[int, str]]:
    pkg = ".".join(path.relative_to(PKG.parent).with_suffix("").parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                out.append((node.lineno, ".".join(base + ([node.module] if node.module else []))))
            elif node.module:
                out.append((node.lineno, node.module))
    return out


MODULES = sorted(p for p in PKG.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PKG)))
def test_no_module_imports_a_layer_above_its_own(path: Path) -> None:
    rel = path.relative_to(PKG)
    own = rel.parts[0].removesuffix(".py")
    if own == "__init__":
        return
    bad = []
    for line, module in _imports(path):
        if module.split(".")[0] == "rclpy" and own != "ros":
            bad.append(f"{line}: {module} (rclpy outside ros/)")
        layer = _layer_of(module)
        if layer is None or layer == own or layer not in RANK:
            continue
        if RANK[layer] > RANK[own]:
            bad.append(f"{line}: {module} (layer {layer} is above {own})")
        elif own in PEERS_APART and layer in PEERS_APART:
            bad.append(f"{line}: {module} ({own} and {layer} meet only in types.py)")
    assert not bad, f"{rel}: " + "; ".join(bad)


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    """The parser finds absolute and relative imports (a checker that finds nothing would pass)."""
    found = dict((m, ln) for ln, m in _imports(PKG / "slam" / "pipeline.py"))
    assert "vggt_ros.slam.config" in found and "vggt_ros.geometry.se3" in found
    found = [m for _, m in _imports(PKG / "runtime" / "core.py")]
    assert "vggt_ros.runtime.params" in found  # `from .params import Params`
