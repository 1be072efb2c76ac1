"""Scene presets built to break a SLAM core (issue 9): a pillar hall, twin rooms and a corridor ring.

`pillar_hall()`: a 12 x 8 x 3 m hall (walls 3-6 m from its middle) with five floor-to-ceiling
pillars (0.3 m square) and a table. The figure-eight of sim.trajectories passes 0.35 m from the
pillars at (+-3.5, 0) while the walls behind them stay 2.5-3 m further: near and far depth in
one view.

`twin_rooms()`: two IDENTICAL rooms A and B (4.6 x 5 x 2.8 m, same textures, same tints, same
furniture) joined by a corridor along their south side. Room B is room A translated by
TWIN_SHIFT = 5.12 m along +x, exactly one texture tile (scene.TEX_SIZE / TEXELS_PER_M), so the
walls, floor and ceiling textures, which are indexed by world coordinates, repeat exactly: a
camera pose in B renders the same image as the pose shifted back into A. Appearance-based place
recognition is fooled by construction. Layout (metres, z up):

    y = 5.0  +---------- A ---------+##+---------- B ---------+
             |                      |##|                      |
             |                      |##|   (separator walls   |
    y = 0    +-----+  door  +-------+##+-----+  door  +-------+
             |           corridor (y -1.9 .. -0.25)           |
    y = -1.9 +------------------------------------------------+
             x = 0      1.7..2.9   4.6  5.12  6.82..8.02    9.72

`corridor_ring()`: a 24 x 12 x 3 m floor whose middle is one solid 20 x 8 m block, leaving a 2 m wide
corridor all round (a long loop: 64 m per lap along its centre line, the start out of sight for most
of it). Its walls repeat their textures every 5.12 m (scene textures are indexed by world coordinates),
so a straight corridor looks alike every 5.12 m apart from a few objects along it: aliasing within one
loop, where the drift bound after a lap (0.1 x 64 m) no longer rules a 5 m jump out.

Walls inside the bounding box are boxes; each wall that one room sees as a box face the other
sees as the bounding box's face, so the box gets that room face's texture index and tint 1
(identical shading: see Scene's face normals).
"""

from __future__ import annotations

import numpy as np

from vggt_ros.sim.scene import TEX_SIZE, TEXELS_PER_M, Box, Scene

#: translation of room B relative to room A (one texture tile along x, metres)
TWIN_SHIFT = TEX_SIZE / TEXELS_PER_M
#: room A's floor rectangle (x0, y0, x1, y1), metres; room B is shifted by TWIN_SHIFT along x
TWIN_ROOM_A = (0.0, 0.0, 4.6, 5.0)
#: x range of each room's door in its south wall, relative to the room's x0
TWIN_DOOR = (1.7, 2.9)
#: corridor y range (south of both rooms, full length of the building)
TWIN_CORRIDOR_Y = (-1.9, -0.25)
_HEIGHT = 2.8
_ONE = (1.0, 1.0, 1.0)


def pillar_hall(seed: int = 0) -> Scene:
    """The pillar hall (see the module doc): room [-6, 6] x [-4, 4] x [0, 3] m."""
    pillars = [(-3.5, 0.0, 6), (3.5, 0.0, 7), (1.5, 0.0, 8), (-2.5, 3.0, 9), (2.5, -3.0, 10)]
    boxes = [Box((x - 0.15, y - 0.15, 0.0), (x + 0.15, y + 0.15, 3.0), t) for x, y, t in pillars]
    boxes += [
        Box((-2.0, -0.35, 0.0), (-1.0, 0.35, 0.75), 11),  # table in the left lobe of the figure-eight
        Box((5.2, 2.6, 0.0), (5.9, 3.9, 1.2), 9),          # cabinet in a corner
        Box((-5.9, -3.9, 0.0), (-5.0, -2.9, 0.6), 10),     # low crate in the opposite corner
    ]
    return Scene(room_lo=np.array([-6.0, -4.0, 0.0]), room_hi=np.array([6.0, 4.0, 3.0]), boxes=boxes,
                 seed=seed)


def _room_furniture(dx: float) -> list[Box]:
    """Furniture of one twin room, translated by dx (identical textures and tints in both rooms)."""
    items = [
        ((0.4, 4.4, 0.0), (1.6, 4.95, 1.8), 6, (1.0, 0.95, 0.9)),    # cabinet against the north wall
        ((3.15, 4.0, 0.0), (4.05, 4.6, 0.75), 7, (0.9, 1.0, 1.05)),  # table in the north-east corner
        ((0.3, 0.6, 0.0), (0.9, 1.2, 0.5), 8, (1.1, 1.0, 0.85)),     # crate by the west wall
        ((4.15, 1.4, 0.0), (4.55, 3.0, 1.6), 9, (0.95, 0.95, 1.1)),  # shelf along the east wall
    ]
    return [Box((lo[0] + dx, lo[1], lo[2]), (hi[0] + dx, hi[1], hi[2]), t, tint) for lo, hi, t, tint in items]


def twin_rooms(seed: int = 0) -> Scene:
    """Two identical rooms joined by a corridor (see the module doc)."""
    x0, y0, x1, y1 = TWIN_ROOM_A
    s = TWIN_SHIFT
    wall_y = (TWIN_CORRIDOR_Y[1], y0)
    boxes: list[Box] = []
    for dx in (0.0, s):
        # south wall pieces either side of the door: seen from the room as a -y wall (room face 2)
        boxes.append(Box((x0 + dx, wall_y[0], 0.0), (x0 + TWIN_DOOR[0] + dx, wall_y[1], _HEIGHT), 2, _ONE))
        boxes.append(Box((x0 + TWIN_DOOR[1] + dx, wall_y[0], 0.0), (x1 + dx, wall_y[1], _HEIGHT), 2, _ONE))
    mid = 0.5 * (x1 + x0 + s)
    # separator: its -x face is A's east wall (room face 1), its +x face is B's west wall (room face 0)
    boxes.append(Box((x1, wall_y[0], 0.0), (mid, y1, _HEIGHT), 1, _ONE))
    boxes.append(Box((mid, wall_y[0], 0.0), (x0 + s, y1, _HEIGHT), 0, _ONE))
    boxes += _room_furniture(0.0) + _room_furniture(s)
    return Scene(room_lo=np.array([x0, TWIN_CORRIDOR_Y[0], 0.0]), room_hi=np.array([x1 + s, y1, _HEIGHT]),
                 boxes=boxes, seed=seed)


def twin_room_of(position: np.ndarray) -> np.ndarray:
    """(N,) int per camera position (N,3): 0 = room A, 1 = room B, -1 = corridor or doorway."""
    p = np.atleast_2d(np.asarray(position, dtype=np.float64))
    x0, y0, x1, y1 = TWIN_ROOM_A
    in_y = (p[:, 1] > y0) & (p[:, 1] < y1)
    out = np.full(len(p), -1, np.intp)
    out[in_y & (p[:, 0] > x0) & (p[:, 0] < x1)] = 0
    out[in_y & (p[:, 0] > x0 + TWIN_SHIFT) & (p[:, 0] < x1 + TWIN_SHIFT)] = 1
    return out


#: corridor_ring's inner block (x0, y0, x1, y1), metres; the corridor runs between it and the outer walls
RING_BLOCK = (-10.0, -4.0, 10.0, 4.0)
#: corridor_ring's outer walls (x0, y0, x1, y1), metres
RING_OUTER = (-12.0, -6.0, 12.0, 6.0)


def corridor_ring(seed: int = 0) -> Scene:
    """The corridor ring (see the module doc): a block in the middle, a few objects along the corridor."""
    x0, y0, x1, y1 = RING_BLOCK
    boxes = [Box((x0, y0, 0.0), (x1, y1, 3.0), 6)]
    boxes += [
        Box((-6.0, 5.5, 0.0), (-5.2, 6.0, 1.8), 7),     # cabinet against the north wall
        Box((3.0, -6.0, 0.0), (4.2, -5.5, 1.0), 8),     # low chest against the south wall
        Box((11.4, 1.0, 0.0), (12.0, 2.0, 1.5), 9),     # shelf in the east corridor
        Box((-12.0, -2.5, 0.0), (-11.5, -1.5, 2.0), 10),  # locker in the west corridor
        Box((7.0, 4.0, 0.0), (7.3, 4.3, 3.0), 11),      # column against the block, north side
    ]
    ox0, oy0, ox1, oy1 = RING_OUTER
    return Scene(room_lo=np.array([ox0, oy0, 0.0]), room_hi=np.array([ox1, oy1, 3.0]), boxes=boxes, seed=seed)


SCENES = {"default": Scene, "pillar_hall": pillar_hall, "twin_rooms": twin_rooms,
          "corridor_ring": corridor_ring}
