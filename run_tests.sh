#!/usr/bin/env bash
# The test suite: CPU only, no ROS 2, no GPU, no model hub. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
tools/bootstrap.sh
exec .venv/bin/python -m pytest vggt_ros "$@"
