"""The node's behaviour without a transport (docs/architecture.md#package-layout).

- params:     the one parameter table (PARAMETERS, Params, load_params_yaml, ParamSpec.descriptor_kwargs)
- core:       NodeCore (queue, worker, timing, publishing policy, reset, save_map, diagnostics)
- queue:      DropQueue (bounded, 'latest' | 'oldest' drop policy)
- publishing: TOPICS (names, types, QoS of the contract), Publication and its data types, Sink
- sinks:      MessageSink (Publication -> ROS message via vggt_ros.msgs builders -> writer callback)
- factory:    pipeline/predictor construction from Params (SIMULATED_NOTE, PredictorUnavailable)
- replay:     `vggt-ros replay` (a rosbag through NodeCore in sync mode)
- the live node's parts: live_input (image/camera_info callbacks), services (save_map/reset that never
  raise), logbridge + throttle (Python logging -> ROS logger, throttled), cancel (abort a window in
  flight), node_status (/diagnostics content), netcheck (kernel socket buffer advice)
Nothing here imports rclpy.
"""
