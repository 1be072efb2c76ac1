"""FrameWindow: window sizes before/after bootstrap, FIFO order, every frame leaves once."""

from __future__ import annotations

import numpy as np
import pytest
from vggt_ros.slam.window import FrameWindow
from vggt_ros.types import Frame


def _f(i: int) -> Frame:
    return Frame(1000 + i, np.zeros((4, 4, 3), np.uint8))


def test_window_sizes_and_fifo():
    w = FrameWindow(16, 4)
    assert w.new_per_window(False) == 16 and w.new_per_window(True) == 12
    for i in range(15):
        w.add(i, _f(i))
        assert not w.ready(False)
    assert w.ready(True)  # 15 >= 12 once the map exists
    w.add(15, _f(15))
    assert w.ready(False)
    got = w.take(12)
    assert [p.index for p in got] == list(range(12)) and len(w) == 4
    assert [p.index for p in w.clear()] == [12, 13, 14, 15] and len(w) == 0
    assert w.take(5) == []


def test_rejects_bad_config_and_out_of_order_index():
    with pytest.raises(ValueError):
        FrameWindow(4, 4)
    with pytest.raises(ValueError):
        FrameWindow(8, 0)
    w = FrameWindow(8, 2)
    w.add(3, _f(3))
    with pytest.raises(ValueError):
        w.add(3, _f(4))
