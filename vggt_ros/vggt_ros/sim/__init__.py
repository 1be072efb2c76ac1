"""Synthetic world (textured rooms, trajectories, lazily rendered sequences, robustness cases in
sim.cases) and the simulated predictor."""

from vggt_ros.sim.scene import Scene, render
from vggt_ros.sim.sequence import Cover, GroundTruth, SyntheticSequence, intrinsics, make_sequence
from vggt_ros.sim.simulated_predictor import SimNoise, SimulatedPredictor

__all__ = ["SimNoise", "SimulatedPredictor", "Scene", "render", "Cover", "GroundTruth", "SyntheticSequence",
           "intrinsics", "make_sequence"]
