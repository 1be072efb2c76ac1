"""Launch the vggt_ros lifecycle node (and optionally RViz).

    ros2 launch vggt_ros slam.launch.py image:=/camera/image_raw camera_info:=/camera/camera_info
    ros2 launch vggt_ros slam.launch.py use_sim_time:=true rviz:=true     # with `ros2 bag play --clock`

Arguments (`ros2 launch vggt_ros slam.launch.py --show-args`):
  image            input image topic (sets the image_topic parameter; `<image>/compressed` becomes
                   compressed_image_topic, used when image_transport:=compressed); '' = params file
  camera_info      input CameraInfo topic (camera_info_topic; optional at runtime: without it the network
                   estimates K); '' = params file
  image_transport  'raw' (sensor_msgs/Image) or 'compressed' (sensor_msgs/CompressedImage); '' = params file
  params_file      node parameters (`/**: ros__parameters:`), default share/vggt_ros/config/vggt_ros.yaml
  namespace        namespace of the node and all its topics (default 'vggt': /vggt/depth, /vggt/map, ...)
  use_sim_time     take the clock from /clock (`ros2 bag play --clock`)
  model            hub id ('facebook/VGGT-1B') or a local checkpoint path; '' = params file
  predictor        'vggt' or 'simulated' (TEST DOUBLE without weights); '' = params file
  autostart        the node configures and activates itself at start (its `autostart` parameter; else
                   use `ros2 lifecycle set`)
  publish_tf       'camera', 'odom' or 'none' (the publish_tf parameter); '' = params file. With 'odom' RViz
                   opens rviz/vggt_ros_odom.rviz (the robot's TF tree parents the camera)
  rviz             also start rviz2 with share/vggt_ros/rviz/vggt_ros.rviz (topics follow `namespace`)
  log_level        the node's log level

The launch does not touch the DDS configuration (CYCLONEDDS_URI, ROS_DOMAIN_ID): yours applies.
"""

import os
import tempfile

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from vggt_ros.ros.launch_config import (
    NODE_EXECUTABLE,
    NODE_NAME,
    node_parameter_overrides,
    parse_bool,
    rewrite_rviz_config,
    rviz_config,
)

PACKAGE = "vggt_ros"


def _launch_setup(context, *args, **kwargs):
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    namespace = arg("namespace").strip("/")
    image = arg("image")
    use_sim_time = parse_bool(arg("use_sim_time"))
    autostart = parse_bool(arg("autostart"))

    overrides = node_parameter_overrides(
        model=arg("model"),
        predictor=arg("predictor"),
        image_transport=arg("image_transport"),
        use_sim_time=use_sim_time,
        image=image,
        camera_info=arg("camera_info"),
        autostart=autostart,  # the node configures and activates itself (no lifecycle request to lose)
        publish_tf=arg("publish_tf"),
    )
    node = LifecycleNode(
        package=PACKAGE,
        executable=NODE_EXECUTABLE,
        name=NODE_NAME,
        namespace=namespace,
        output="screen",
        emulate_tty=True,
        # later entries override earlier ones: launch arguments beat the params file. The input topics
        # are parameters (image_topic, compressed_image_topic, camera_info_topic) set from `image` and
        # `camera_info`, the one knob: no remappings, so nothing silently defeats `image:=`
        parameters=[arg("params_file"), overrides],
        ros_arguments=["--log-level", arg("log_level")],
    )
    actions = [node]

    if parse_bool(arg("rviz")):
        config_name = rviz_config(arg("publish_tf"))
        config_path = os.path.join(get_package_share_directory(PACKAGE), "rviz", config_name)
        with open(config_path, encoding="utf-8") as f:
            text = rewrite_rviz_config(f.read(), namespace=namespace, image_topic=image)
        # the shipped config names the default namespace; RViz gets a copy naming this launch's topics
        fd, rviz_path = tempfile.mkstemp(prefix="vggt_ros_", suffix=".rviz")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        actions.append(Node(
            package="rviz2",
            executable="rviz2",
            name="rviz2",
            arguments=["-d", rviz_path],
            parameters=[{"use_sim_time": use_sim_time}],
            output="screen",
        ))
    return actions


def generate_launch_description():
    default_params = os.path.join(get_package_share_directory(PACKAGE), "config", "vggt_ros.yaml")
    return LaunchDescription([
        DeclareLaunchArgument("image", default_value="/camera/image_raw",
                              description="Input image topic (sensor_msgs/Image)."),
        DeclareLaunchArgument("camera_info", default_value="/camera/camera_info",
                              description="Input sensor_msgs/CameraInfo topic (optional at runtime)."),
        DeclareLaunchArgument("image_transport", default_value="",
                              description="'raw' or 'compressed' ('' = the params file's value)."),
        DeclareLaunchArgument("params_file", default_value=default_params,
                              description="Node parameters YAML (/**: ros__parameters:)."),
        DeclareLaunchArgument("namespace", default_value="vggt",
                              description="Namespace of the node and its topics."),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="Use /clock (ros2 bag play --clock)."),
        DeclareLaunchArgument("model", default_value="",
                              description="Hub id or local checkpoint path ('' = the params file's value)."),
        DeclareLaunchArgument("predictor", default_value="",
                              description="'vggt' or 'simulated' (test double); '' = params file."),
        DeclareLaunchArgument("autostart", default_value="true",
                              description="Configure and activate the lifecycle node at start."),
        DeclareLaunchArgument("publish_tf", default_value="",
                              description="'camera', 'odom' or 'none' (publish_tf); '' = params file."),
        DeclareLaunchArgument("rviz", default_value="false", description="Also start rviz2."),
        DeclareLaunchArgument("log_level", default_value="info", description="Node log level."),
        OpaqueFunction(function=_launch_setup),
    ])
