"""`vggt-ros` command line: one entry, one sub-command per module.

Each sub-command lives beside the code it drives and exposes
`register(subparsers) -> None`, which adds its parser and sets `func(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# module path of every sub-command, in the order `--help` lists them
COMMAND_MODULES = (
    "vggt_ros.io.sample",
    "vggt_ros.runtime.replay",
    "vggt_ros.eval.command",
)


def version() -> str:
    """The installed package's version (setup.py), or 'unknown' when run from an uninstalled tree."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("vggt_ros")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vggt-ros",
        description="vggt_ros offline tools: synthetic sample bags, rosbag replay, evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"vggt-ros {version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
