"""ROS 2 transport of vggt_ros.

node.py is the only module of the package that imports rclpy (and ROS message packages); the other
modules here (launch_config, convert, ground_truth) are ROS-free helpers of the node and of
launch/slam.launch.py, tested without ROS.
"""
