"""The live vggt_ros node: a thin rclpy LifecycleNode over `runtime.NodeCore` (the ONLY rclpy importer).

Everything with behaviour lives in ROS-free modules; this file only wires rclpy to them:
- parameters: declared from `runtime.params.PARAMETERS` (ParameterDescriptor with description, range,
  read_only), validated on change by the same table;
- input: Image or CompressedImage (sensor-data QoS, REP 2003) -> `msgs.decode` -> `types.Frame`
  -> `NodeCore.submit`; CameraInfo -> `msgs.decode.camera_info_K`;
- output: `NodeCore` publications -> `runtime.sinks.MessageSink` (builders with the rclpy message
  family) -> lifecycle publishers / TF broadcaster; /diagnostics through diagnostic_updater;
- services: save_map (vggt_ros_msgs/srv/SaveMap) and reset (std_srvs/srv/Trigger) -> NodeCore.

Lifecycle (REP/design "Managed nodes"): the constructor declares parameters only. configure builds the
predictor (weights load here), pipeline, publishers, services and TF; activate (re)loads weights if
they were released, starts the worker and subscribes; deactivate unsubscribes, lets the window in flight
finish, and releases the predictor's (CUDA) memory; cleanup drops everything configure built.

Works on Humble and Jazzy: only APIs present in Humble's rclpy (rclpy.lifecycle, throttled logging,
add_on_set_parameters_callback), tf2_ros and diagnostic_updater are used.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import rclpy
import rclpy.logging
from diagnostic_msgs.msg import DiagnosticStatus
from diagnostic_updater import DiagnosticStatusWrapper, Updater
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.duration import Duration
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_srvs.srv import Trigger
from tf2_ros import Buffer, TransformBroadcaster, TransformException, TransformListener

from vggt_ros.msgs.builders import MessageBuilder
from vggt_ros.msgs.convert import transform_to_matrix
from vggt_ros.msgs.decode import ImageDecodeError, camera_info_K, decode_compressed_image, decode_image
from vggt_ros.msgs.family import RclpyFamily
from vggt_ros.msgs.stamps import stamp_ns
from vggt_ros.ros.ground_truth import GroundTruthCache
from vggt_ros.ros.launch_config import NODE_NAME
from vggt_ros.runtime import factory
from vggt_ros.runtime.core import NodeCore
from vggt_ros.runtime.params import PARAMETERS, SPECS, ParamError, Params
from vggt_ros.runtime.publishing import TOPICS, Publication
from vggt_ros.runtime.sinks import MessageSink
from vggt_ros.types import Frame
from vggt_ros_msgs.srv import SaveMap

THROTTLE_S = 5.0  # seconds between repeated log lines of one kind (callbacks at camera rate)
TF_LOOKUP_TIMEOUT = Duration(seconds=0.1)  # odom -> camera wait in the worker thread, not a callback
DEFAULT_OPTICAL_FRAME = "camera_optical_frame"  # Frame's default, for images without header.frame_id


def qos_for(kind: str) -> QoSProfile:
    """Publisher QoS of a TopicSpec.qos kind (ARCHITECTURE.md; REP 2003)."""
    if kind == "reliable_transient_local":  # map and path: latched, so a late RViz still gets them
        return QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.TRANSIENT_LOCAL)
    if kind == "reliable_volatile":
        return QoSProfile(depth=5, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.VOLATILE)
    raise ValueError(f"no publisher QoS for kind {kind!r}")


def descriptor_for(name: str) -> ParameterDescriptor:
    """rcl_interfaces/ParameterDescriptor of one table entry (description, range, read_only)."""
    kw = SPECS[name].descriptor_kwargs()
    return ParameterDescriptor(
        name=kw["name"], type=kw["type"], description=kw["description"],
        additional_constraints=kw["additional_constraints"], read_only=kw["read_only"],
        integer_range=[IntegerRange(**r) for r in kw["integer_range"]],
        floating_point_range=[FloatingPointRange(**r) for r in kw["floating_point_range"]],
    )


class _RosLogHandler(logging.Handler):
    """Forwards the runtime's Python logging (logger 'vggt_ros') to the node's rcutils logger (/rosout)."""

    def __init__(self, logger: Any) -> None:
        super().__init__()
        self._ros_logger = logger

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            if record.levelno >= logging.ERROR:
                self._ros_logger.error(text)
            elif record.levelno >= logging.WARNING:
                self._ros_logger.warning(text)
            elif record.levelno >= logging.INFO:
                self._ros_logger.info(text)
            else:
                self._ros_logger.debug(text)
        except Exception:  # logging must never raise into the runtime
            self.handleError(record)


class VggtNode(LifecycleNode):
    """vggt_ros as a managed node. Topics, QoS and frames: ARCHITECTURE.md's interface contract."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        for spec in PARAMETERS:
            self.declare_parameter(spec.name, spec.default, descriptor_for(spec.name))
        # raises ParamError at start-up on values rclpy's descriptor checks cannot see (choices, empty)
        self._params = self._read_params()
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self._log_handler = _RosLogHandler(self.get_logger().get_child("runtime"))
        logging.getLogger("vggt_ros").addHandler(self._log_handler)
        logging.getLogger("vggt_ros").setLevel(logging.INFO)

        self._core: NodeCore | None = None
        self._state = "unconfigured"  # lifecycle primary state, for diagnostics
        self._predictor: Any = None
        self._ground_truth: Any = None  # simulated predictor's ground-truth cache (test mode only)
        self._outputs: dict[str, Any] = {}
        self._service_handles: list[Any] = []
        self._inputs: list[Any] = []  # image (+ camera_info) subscriptions: activate -> deactivate
        self._gt_inputs: list[Any] = []  # ground-truth subscriptions (test mode): configure -> cleanup
        self._tf_broadcaster: TransformBroadcaster | None = None
        self._tf_buffer: Buffer | None = None
        self._tf_listener: TransformListener | None = None
        self._camera_info: CameraInfo | None = None
        self._camera_info_rejected: dict[str, int] = {}
        self._sink_errors = 0
        self._input_group = MutuallyExclusiveCallbackGroup()
        self._service_group = MutuallyExclusiveCallbackGroup()

        # diagnostics exist in every lifecycle state (they say which one); the updater declares its own
        # 'diagnostic_updater.period' parameter, set from ours
        self._updater = Updater(self, period=float(self._params["diagnostics_period"]))
        self._updater.setHardwareID(NODE_NAME)
        self._updater.add("runtime", self._diagnose_runtime)
        self._updater.add("gpu memory", self._diagnose_gpu)
        self.get_logger().info("vggt_ros created (unconfigured); configure to load the model")

    # ------------------------------------------------------------------ parameters
    def _read_params(self) -> Params:
        return Params({s.name: self.get_parameter(s.name).value for s in PARAMETERS})

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """Validate runtime changes with the table; unknown names (use_sim_time, ...) are not ours."""
        changes = {p.name: p.value for p in parameters if p.name in SPECS}
        if not changes:
            return SetParametersResult(successful=True)
        try:
            new = self._params.replace(allow_read_only=False, **changes)
        except ParamError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        self._params = new
        if self._core is not None:
            # output and TF settings are read per publication; pipeline, input and queue settings are
            # built at configure and apply after the next cleanup + configure
            self._core.params = new
            self.get_logger().info(f"parameters changed: {', '.join(sorted(changes))} (pipeline, input "
                                   "and queue settings apply at the next configure)")
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        params = self._params
        try:
            self._predictor = self._make_predictor(params)  # weights load here: a missing checkpoint fails
            pipeline = factory.make_pipeline(params, self._predictor)
            builder = MessageBuilder(RclpyFamily(), params["map_frame"])
            for name, spec in TOPICS.items():
                if not name.startswith("/"):  # '/tf' and '/diagnostics' have their own publishers
                    self._outputs[name] = self.create_lifecycle_publisher(
                        _message_class(spec.msgtype), name, qos_for(spec.qos))
            self._tf_broadcaster = TransformBroadcaster(self)
            tf_lookup = None
            if params["publish_tf"] == "odom":
                self._tf_buffer = Buffer()
                self._tf_listener = TransformListener(self._tf_buffer, self)
                tf_lookup = self._lookup_transform
            self._core = NodeCore(
                params, pipeline, _Sink(self, MessageSink(builder, self._write)), mode="live",
                predictor_name=params["predictor"],
                predictor_note=factory.SIMULATED_NOTE if params["predictor"] == "simulated" else "",
                clock_ns=lambda: self.get_clock().now().nanoseconds,
                tf_lookup=tf_lookup,  # map_saver: NodeCore's default, the pipeline's atomic save_map
            )
            self._service_handles = [
                self.create_service(SaveMap, "save_map", self._on_save_map,
                                    callback_group=self._service_group),
                self.create_service(Trigger, "reset", self._on_reset, callback_group=self._service_group),
            ]
        except factory.PredictorUnavailable as exc:
            self.get_logger().error(f"configure failed: {exc}")
            self._release()
            return TransitionCallbackReturn.FAILURE
        except Exception as exc:  # a failed configure leaves the node unconfigured, never half-built
            self.get_logger().error(f"configure failed: {type(exc).__name__}: {exc}")
            self._release()
            return TransitionCallbackReturn.FAILURE
        if params["predictor"] == "simulated":
            self.get_logger().warning(factory.SIMULATED_NOTE)
        self.get_logger().info(f"configured: predictor {params['predictor']}, "
                               f"map frame {params['map_frame']}, TF mode {params['publish_tf']}")
        return self._entered("inactive", super().on_configure(state))

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        assert self._core is not None
        try:
            self._load_predictor()  # weights released by a deactivate come back
        except Exception as exc:
            self.get_logger().error(f"activate failed, weights did not load: {type(exc).__name__}: {exc}")
            return TransitionCallbackReturn.FAILURE
        self._core.start()
        try:
            self._subscribe(self._params)
        except Exception as exc:  # e.g. an invalid topic name in the parameters
            self.get_logger().error(f"activate failed, cannot subscribe: {type(exc).__name__}: {exc}")
            self._unsubscribe()
            self._core.stop()
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info(f"active: listening on {self._inputs[0].topic_name}")
        return self._entered("active", super().on_activate(state))  # enables the lifecycle publishers

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._unsubscribe()
        if self._core is not None:
            # the window in flight finishes and publishes before the publishers are disabled
            if not self._core.stop():
                self.get_logger().error("the worker is still inside a window after shutdown_timeout")
        self._unload_predictor()
        return self._entered("inactive", super().on_deactivate(state))

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return self._entered("unconfigured", super().on_cleanup(state))

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.shutdown_runtime()
        return self._entered("finalized", super().on_shutdown(state))

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f"error while in/leaving state '{state.label}'; releasing everything")
        self.shutdown_runtime()
        self._state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS  # -> unconfigured: configure may be tried again

    def destroy_node(self) -> None:
        logging.getLogger("vggt_ros").removeHandler(self._log_handler)
        super().destroy_node()

    def _entered(self, state: str, result: TransitionCallbackReturn) -> TransitionCallbackReturn:
        if result == TransitionCallbackReturn.SUCCESS:
            self._state = state
        return result

    def shutdown_runtime(self) -> None:
        """Stop input, the worker and the model; safe to call in any state and more than once."""
        self._unsubscribe()
        if self._core is not None:
            self._core.stop()
        self._release()

    def _release(self) -> None:
        """Undo configure: publishers, services, TF, runtime, predictor (weights and CUDA memory)."""
        self._unsubscribe()
        if self._core is not None and self._core.worker_alive:
            self._core.stop()
        for pub in self._outputs.values():
            self.destroy_lifecycle_publisher(pub)
        self._outputs = {}
        for srv in self._service_handles:
            self.destroy_service(srv)
        self._service_handles = []
        if self._tf_listener is not None:
            self._tf_listener.unregister()
        self._tf_listener = None
        self._tf_buffer = None
        if self._tf_broadcaster is not None:
            self.destroy_publisher(self._tf_broadcaster.pub_tf)
        self._tf_broadcaster = None
        self._core = None
        self._unload_predictor()
        self._predictor = None
        for sub in self._gt_inputs:
            self.destroy_subscription(sub)
        self._gt_inputs = []
        self._ground_truth = None

    # ------------------------------------------------------------------ predictor
    def _make_predictor(self, params: Params) -> Any:
        """The network (weights load now) or, in test mode, the simulated predictor fed by ground truth."""
        if params["predictor"] == "vggt":
            return factory.make_vggt_predictor(params, load=True)  # PredictorUnavailable says why not
        # TEST MODE: the ground truth arrives on the played sample bag's topics (io/sample.py)
        self._ground_truth = GroundTruthCache()
        gt_qos = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST,
                            reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
        for topic, msgtype in self._ground_truth.topics().items():
            self._gt_inputs.append(self.create_subscription(
                _message_class(msgtype), topic, lambda msg, t=topic: self._on_ground_truth(t, msg), gt_qos,
                callback_group=self._input_group))
        return factory.make_simulated_predictor(self._ground_truth.lookup)

    def _on_ground_truth(self, topic: str, msg: Any) -> None:
        cache = self._ground_truth
        if cache is None:
            return
        try:
            cache.add(topic, msg)
        except Exception as exc:
            self.get_logger().warning(f"ground truth on {topic} unusable: {exc}",
                                      throttle_duration_sec=THROTTLE_S)

    def _load_predictor(self) -> None:
        load = getattr(self._predictor, "load", None)  # VGGTPredictor.load is idempotent
        if callable(load):
            load()

    def _unload_predictor(self) -> None:
        unload = getattr(self._predictor, "unload", None)
        if not callable(unload):
            return
        try:
            unload()  # frees the weights' CUDA memory; load() brings them back on activate
        except Exception as exc:
            self.get_logger().error(f"predictor unload failed: {type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------ input
    def _subscribe(self, params: Params) -> None:
        if params["image_transport"] == "compressed":
            sub = self.create_subscription(CompressedImage, params["compressed_image_topic"], self._on_image,
                                           qos_profile_sensor_data, callback_group=self._input_group)
        else:
            sub = self.create_subscription(Image, params["image_topic"], self._on_image,
                                           qos_profile_sensor_data, callback_group=self._input_group)
        # keep the image subscription first: on_activate logs its resolved topic name
        self._inputs.insert(0, sub)
        if params["use_camera_info"]:
            # best effort accepts both reliable and best-effort camera_info publishers
            self._inputs.append(self.create_subscription(
                CameraInfo, params["camera_info_topic"], self._on_camera_info, qos_profile_sensor_data,
                callback_group=self._input_group))

    def _unsubscribe(self) -> None:
        for sub in self._inputs:
            self.destroy_subscription(sub)
        self._inputs = []
        self._camera_info = None

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg

    def _on_image(self, msg: Image | CompressedImage) -> None:
        """Decode, attach K, submit. Never raises: bad input is a counted, logged drop."""
        core = self._core
        if core is None:
            return
        try:
            rgb = decode_compressed_image(msg) if isinstance(msg, CompressedImage) else decode_image(msg)
        except ImageDecodeError as exc:
            core.count_drop(exc.reason, str(exc))
            self.get_logger().warning(f"image dropped: {exc}", throttle_duration_sec=THROTTLE_S)
            return
        except Exception as exc:
            core.count_drop("decode_error", f"{type(exc).__name__}: {exc}")
            self.get_logger().error(f"image dropped, decoder failed: {type(exc).__name__}: {exc}",
                                    throttle_duration_sec=THROTTLE_S)
            return
        try:
            frame = Frame(stamp_ns=stamp_ns(msg.header.stamp), rgb=rgb, K=self._intrinsics(rgb.shape[:2]),
                          frame_id=msg.header.frame_id or DEFAULT_OPTICAL_FRAME)
            core.submit(frame)
        except Exception as exc:  # the runtime counts its own drops; this is the last safety net
            core.count_drop("submit_error", f"{type(exc).__name__}: {exc}")
            self.get_logger().error(f"image dropped: {type(exc).__name__}: {exc}",
                                    throttle_duration_sec=THROTTLE_S)

    def _intrinsics(self, size_hw: tuple[int, int]) -> Any:
        """K of the latest CameraInfo for this image size, or None (the network estimates K)."""
        info = self._camera_info
        if info is None or not self._params["use_camera_info"]:
            return None
        K, reason = camera_info_K(info, size_hw)
        if K is None:
            self._camera_info_rejected[reason] = self._camera_info_rejected.get(reason, 0) + 1
            self.get_logger().warning(f"camera_info ignored ({reason}); the network estimates K",
                                      throttle_duration_sec=THROTTLE_S)
        return K

    # ------------------------------------------------------------------ output
    def _write(self, topic: str, msg: Any, stamp: int) -> None:
        """MessageSink writer: TF through the broadcaster, the rest on the lifecycle publishers."""
        if topic == "/tf":
            if self._tf_broadcaster is not None:
                self._tf_broadcaster.sendTransform(list(msg.transforms))
            return
        pub = self._outputs.get(topic)
        if pub is not None:
            pub.publish(msg)

    def _lookup_transform(self, target: str, source: str, stamp: int) -> Any:
        """T_target_source at the image stamp from tf2, or None (NodeCore counts and logs the failure)."""
        buffer = self._tf_buffer
        if buffer is None:
            return None
        try:
            tf = buffer.lookup_transform(target, source, Time(nanoseconds=stamp), timeout=TF_LOOKUP_TIMEOUT)
        except TransformException as exc:
            self.get_logger().warning(f"TF {target} -> {source} unavailable: {exc}",
                                      throttle_duration_sec=THROTTLE_S)
            return None
        return transform_to_matrix(tf.transform)

    # ------------------------------------------------------------------ services
    def _on_save_map(self, request: SaveMap.Request, response: SaveMap.Response) -> SaveMap.Response:
        core = self._core
        if core is None:
            response.success, response.message = False, "not configured"
            return response
        try:
            result = core.save_map(request.name)
        except Exception as exc:
            response.success, response.message = False, f"{type(exc).__name__}: {exc}"
            return response
        response.success, response.message = bool(result.success), result.message
        response.path = result.path
        response.num_points, response.num_keyframes = int(result.num_points), int(result.num_keyframes)
        (self.get_logger().info if result.success else self.get_logger().warning)(
            f"save_map '{request.name}': {result.message}")
        return response

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        core = self._core
        if core is None:
            response.success, response.message = False, "not configured"
            return response
        try:
            core.reset()
        except Exception as exc:
            response.success, response.message = False, f"{type(exc).__name__}: {exc}"
            return response
        response.success, response.message = True, "map and trajectory cleared"
        return response

    # ------------------------------------------------------------------ diagnostics
    def _diagnose_runtime(self, stat: DiagnosticStatusWrapper) -> DiagnosticStatusWrapper:
        try:  # an exception in a timer callback would end the executor's spin
            return self._fill_runtime_status(stat)
        except Exception as exc:
            stat.summary(DiagnosticStatus.ERROR, f"diagnostics failed: {type(exc).__name__}: {exc}")
            return stat

    def _fill_runtime_status(self, stat: DiagnosticStatusWrapper) -> DiagnosticStatusWrapper:
        state = self._state
        core = self._core
        if core is None:
            stat.summary(DiagnosticStatus.OK, f"{state}: no runtime (configure to start)")
            stat.add("lifecycle_state", state)
            return stat
        d = core.diagnostics()
        stat.summary(bytes([d.level]), f"{state}: {d.message}")  # DiagnosticStatus.level is a `byte` field
        stat.add("lifecycle_state", state)
        for key, value in d.key_values():
            stat.add(key, value)
        for reason, n in sorted(self._camera_info_rejected.items()):
            stat.add(f"camera_info_rejected.{reason}", str(n))
        stat.add("sink_errors", str(self._sink_errors))
        return stat

    def _diagnose_gpu(self, stat: DiagnosticStatusWrapper) -> DiagnosticStatusWrapper:
        try:
            import torch

            if not torch.cuda.is_available():
                stat.summary(DiagnosticStatus.OK, "no CUDA device (CPU inference)")
                return stat
            allocated, reserved = torch.cuda.memory_allocated(), torch.cuda.memory_reserved()
            total = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
            stat.summary(DiagnosticStatus.OK, f"{allocated / 2**20:.0f} MiB allocated")
            stat.add("allocated_mib", f"{allocated / 2**20:.1f}")
            stat.add("reserved_mib", f"{reserved / 2**20:.1f}")
            stat.add("peak_allocated_mib", f"{torch.cuda.max_memory_allocated() / 2**20:.1f}")
            stat.add("total_mib", f"{total / 2**20:.1f}")
        except Exception as exc:
            stat.summary(DiagnosticStatus.WARN, f"GPU memory unavailable: {type(exc).__name__}: {exc}")
        return stat


class _Sink:
    """The runtime's sink for the live node: skips '/diagnostics' (diagnostic_updater publishes it) and
    never raises into the worker thread (a failed message is counted and logged)."""

    def __init__(self, node: VggtNode, inner: MessageSink) -> None:
        self._node = node
        self._inner = inner

    def publish(self, pub: Publication) -> None:
        if pub.topic == "/diagnostics":
            return
        try:
            self._inner.publish(pub)
        except Exception as exc:
            self._node._sink_errors += 1
            self._node.get_logger().error(f"publishing {pub.topic} failed: {type(exc).__name__}: {exc}",
                                          throttle_duration_sec=THROTTLE_S)


def _message_class(msgtype: str) -> Any:
    """'pkg/msg/Name' -> the rclpy message class (same resolution the builders use)."""
    return RclpyFamily().cls(msgtype)


def main(args: list[str] | None = None) -> int:
    """Console script `vggt_node`: spin the lifecycle node on a multi-threaded executor."""
    rclpy.init(args=args)
    node: VggtNode | None = None
    code = 0
    try:
        try:
            node = VggtNode()
        except Exception as exc:  # a bad params file (type, range, choice): say which, exit non-zero
            rclpy.logging.get_logger(NODE_NAME).fatal(f"cannot start: {type(exc).__name__}: {exc}")
            return 1
        executor = MultiThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.shutdown_runtime()
            node.destroy_node()
        if rclpy.ok():  # Humble has no rclpy.try_shutdown()
            rclpy.shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
