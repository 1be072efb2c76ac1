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
