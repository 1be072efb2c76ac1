"""Synthetic world (textured room, trajectories, lazily rendered sequences) and the simulated predictor."""

from vggt_ros.sim.predictor import SimNoise, SimulatedPredictor
from vggt_ros.sim.scene import Scene, render
from vggt_ros.sim.sequence import GroundTruth, SyntheticSequence, intrinsics, make_sequence

__all__ = ["SimNoise", "SimulatedPredictor", "Scene", "render", "GroundTruth", "SyntheticSequence",
           "intrinsics", "make_sequence"]
