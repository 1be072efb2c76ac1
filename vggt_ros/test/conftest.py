"""Shared pytest fixtures: paths to the repo's test data and to ../shared (may be absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

TEST_DIR = Path(__file__).resolve().parent
DATA_DIR = TEST_DIR / "data"
REPO_ROOT = TEST_DIR.parent.parent
SHARED_FIXTURES = REPO_ROOT.parent / "shared" / "fixtures" / "vggt_golden"


@pytest.fixture
def data_dir() -> Path:
    return DATA_DIR


@pytest.fixture
def shared_fixtures() -> Path:
    """The full golden fixtures; tests that need more than test/data skip without them."""
    if not SHARED_FIXTURES.is_dir():
        pytest.skip("../shared/fixtures/vggt_golden is absent in this clone")
    return SHARED_FIXTURES


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors: one intra-op thread is 10-50x faster than two on a shared, loaded CPU
    (OpenMP barriers wait for descheduled threads); restored afterwards. Use per module with
    `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def vggt_ros_logs_propagate() -> None:
    """Under `colcon test`, launch_testing's plugin imports ROS 2's `launch`, whose logger class does not
    propagate: the tests that read our log records (caplog, the ROS log bridge) need propagation back."""
    from vggt_ros.runtime.logbridge import ensure_propagation

    ensure_propagation()
