"""vggt_ros: ament_python package that also installs with plain pip (no ROS needed).

Python dependencies are declared here and only here, as ranges that Humble (Python 3.10,
numpy 1.21) through Jazzy (Python 3.12) can satisfy. On Python 3.10 (Humble's) numpy stays
below 2: ROS's binary Python packages there are built against numpy 1.x. Next to any ROS 2
install use ros-constraints.txt as well (numpy 1.x, setuptools < 80 for colcon; README).
"""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "vggt_ros"

INSTALL_REQUIRES = [
    "numpy>=1.21,<2; python_version < '3.11'",
    "numpy>=1.21,<3; python_version >= '3.11'",
    "scipy>=1.8",
    "torch>=2.3",
    "opencv-python-headless>=4.5",
    "pyyaml>=5.4",
    "rosbags>=0.9.19",
    "mcap>=1.1",  # stream reader: the readable part of a truncated .mcap (io/bag.py)
    "safetensors>=0.4",
    "huggingface_hub>=0.20",
    "tqdm>=4.60",
    "evo>=1.25",
    "matplotlib>=3.5",
    "pillow>=9.0",
    # slam.pose_graph: Similarity3 factors first ship in the 4.3 wheels; 4.3.0 has no cp310 wheel,
    # so Humble (Python 3.10) gets the 4.3a1 pre-release this specifier allows (the pose-graph
    # tests pass on 4.3a1 + numpy 1.24 and on 4.3.0 + numpy 2.4).
    "gtsam>=4.3a1",
]

EXTRAS_REQUIRE = {
    "test": [
        "pytest>=7",
        "pytest-timeout>=2.1",
        "mcap-ros2-support>=0.5",
        "ruff>=0.4",
        "mypy>=1.8",
        "types-PyYAML",
    ],
}

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*", "bench"]),
    package_data={PACKAGE: ["py.typed", "msgs/definitions/*.msg"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml", "ros-constraints.txt"]),
        ("share/" + PACKAGE + "/launch", glob("launch/*.py")),
        ("share/" + PACKAGE + "/config", glob("config/*.yaml") + glob("config/*.xml")),
        ("share/" + PACKAGE + "/rviz", glob("rviz/*.rviz")),
    ],
    python_requires=">=3.10",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    zip_safe=False,
    maintainer="vggt_ros developers",
    maintainer_email="vggt-ros@example.org",
    description="Live 3D perception from one camera with VGGT: poses, depth, point clouds, global map.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "vggt-ros = vggt_ros.cli:main",
            "vggt_node = vggt_ros.ros.main:main",
        ],
    },
)
