"""ROS 2 transport of vggt_ros.

node.py (the lifecycle node), main.py (its process: Ctrl-C, exit code) and adapters.py (QoS profiles,
descriptors, subscriptions, tf2, steady timer) import rclpy; launch_config and ground_truth are
ROS-free helpers of the node and of launch/slam.launch.py, tested without ROS. Behaviour lives in
runtime/ and msgs/.
"""
