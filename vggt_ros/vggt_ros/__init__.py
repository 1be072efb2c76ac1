"""vggt_ros: live 3D perception from one camera with VGGT, for ROS 2 (ROS-free core)."""

__version__ = "0.1.0"
