"""Installing next to ROS 2 (issue: README's steps pulled numpy 2 and setuptools 84 on Humble, which broke
`colcon build`, and `vggt-ros` was not on PATH). Checks the shipped constraints, setup.py's markers and
that the README's ROS commands are the ones that work. ROS-free.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

packaging = pytest.importorskip("packaging")
from packaging.requirements import Requirement  # noqa: E402
from packaging.specifiers import SpecifierSet  # noqa: E402

PKG = Path(__file__).resolve().parents[1]
README = PKG.parent / "README.md"
CONSTRAINTS = PKG / "ros-constraints.txt"


def _install_requires() -> list[Requirement]:
    tree = ast.parse((PKG / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "INSTALL_REQUIRES":
            return [Requirement(r) for r in ast.literal_eval(node.value)]
    raise AssertionError("setup.py has no INSTALL_REQUIRES")


def _constraints() -> dict[str, SpecifierSet]:
    out = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            r = Requirement(line)
            out[r.name] = r.specifier
    return out


def test_constraints_keep_ros_python_packages_buildable() -> None:
    c = _constraints()
    assert "2.0" not in c["numpy"] and "1.26.4" in c["numpy"] and "1.21.5" in c["numpy"]  # Jazzy, Humble
    assert "84.2.1" not in c["setuptools"] and "79.0.1" in c["setuptools"] and "77.0.3" in c["setuptools"]
    assert "9.0.0" not in c["pytest"]


@pytest.mark.parametrize("python,ok,bad", [("3.10", "1.21.5", "2.0.0"), ("3.12", "2.1.0", "3.0.0")])
def test_numpy_range_per_python(python: str, ok: str, bad: str) -> None:
    env = {"python_version": python}
    numpy = [r for r in _install_requires()
             if r.name == "numpy" and (r.marker is None or r.marker.evaluate(env))]
    assert len(numpy) == 1  # Humble's Python 3.10 never gets numpy 2 from setup.py
    assert ok in numpy[0].specifier and bad not in numpy[0].specifier


def test_setup_installs_the_constraints_and_the_dds_config() -> None:
    setup = (PKG / "setup.py").read_text()
    assert '"ros-constraints.txt"' in setup and 'glob("config/*.xml")' in setup
    assert (PKG / "config" / "cyclonedds_loopback.xml").is_file()


def test_readme_ros_commands_are_the_working_ones() -> None:
    text = README.read_text()
    ros = text[text.index("## ROS 2 (Humble, Jazzy)"):text.index("## Offline tools")]
    assert "-c src/vggt_ros_repo/vggt_ros/ros-constraints.txt" in ros
    assert (PKG / "ros-constraints.txt").relative_to(PKG.parent) == Path("vggt_ros/ros-constraints.txt")
    assert "--break-system-packages" in ros  # Jazzy's PEP 668 Python
    # inside a colcon workspace the console scripts live in lib/vggt_ros: `ros2 run`, never a bare name
    bare = [m for m in re.findall(r"(?m)^.*\bvggt-ros (?:sample|replay|eval)\b.*$", ros)
            if "ros2 run vggt_ros vggt-ros" not in m]
    assert not bare, bare
    assert "ros2 run vggt_ros vggt-ros" in ros
    assert "net.core.rmem_max=67108864" in ros and "cyclonedds_loopback.xml" in ros
    cfg = (PKG / "setup.cfg").read_text()
    assert "install_scripts=$base/lib/vggt_ros" in cfg  # what makes `ros2 run` find them
