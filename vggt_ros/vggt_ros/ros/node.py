"""The live vggt_ros node: a thin rclpy LifecycleNode over `runtime.NodeCore` (rclpy only in ros/).
The process around it (init, spin, Ctrl-C, exit code) is ros/main.py.

Behaviour lives in ROS-free modules; this file wires rclpy to them:
- parameters: `runtime.params` (descriptors via ros.adapters); input: `runtime.live_input.LiveInput`;
- output: `runtime.sinks` (MessageSink with rclpy messages, GuardedSink) -> lifecycle publishers / TF;
  QoS from the one table `msgs.qos` (per-frame outputs at a depth that covers a window);
- /diagnostics: `runtime.node_status`, published from a STEADY-clock timer (keeps reporting with
  use_sim_time while /clock is silent), stamped with the ROS clock;
- services: `runtime.services` (never raise); logging: `runtime.logbridge` (Python logging -> the
  node's logger, one call line per severity, throttled), so no line here calls get_logger() itself;
- stopping: `NodeCore.stop` waits once, within shutdown_timeout, cancelling the window in flight
  (`runtime.cancel.CancellablePredictor`); on Ctrl-C nothing is published after the context goes.

Lifecycle (managed nodes): the constructor declares parameters only. configure builds the predictor
(weights load here), pipeline, publishers, services and TF; activate (re)loads released weights,
starts the worker and subscribes; deactivate unsubscribes, stops the worker (bounded) and releases
the predictor's (CUDA) memory; cleanup drops everything configure built. Humble and Jazzy APIs only.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.service import Service
from std_srvs.srv import Trigger
from tf2_ros import TransformBroadcaster

from vggt_ros.msgs.builders import MessageBuilder
from vggt_ros.msgs.family import RclpyFamily
from vggt_ros.msgs.qos import qos_spec
from vggt_ros.ros.adapters import (
    TfLookup,
    descriptor_for,
    message_class,
    qos_profile,
    steady_timer,
    subscribe_ground_truth,
    subscribe_inputs,
    topic_qos,
)
from vggt_ros.ros.ground_truth import GroundTruthCache
from vggt_ros.ros.launch_config import NODE_NAME
from vggt_ros.runtime import factory, logbridge, netcheck, node_status, services
from vggt_ros.runtime.cancel import CancellablePredictor
from vggt_ros.runtime.core import NodeCore
from vggt_ros.runtime.live_input import LiveInput
from vggt_ros.runtime.params import PARAMETERS, SPECS, ParamError, Params
from vggt_ros.runtime.publishing import TOPICS
from vggt_ros.runtime.sinks import GuardedSink, MessageSink
from vggt_ros_msgs.srv import SaveMap

log = logging.getLogger("vggt_ros.node")


class VggtNode(LifecycleNode):
    """vggt_ros as a managed node. Topics, QoS and frames: README 'What it publishes'."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        for spec in PARAMETERS:
            self.declare_parameter(spec.name, spec.default, descriptor_for(spec.name))
        self._params = Params({s.name: self.get_parameter(s.name).value for s in PARAMETERS})  # ParamError
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._log_handler = logbridge.attach(self.get_logger())
        self._state = "unconfigured"  # lifecycle primary state, for diagnostics
        self._core: NodeCore | None = None
        self._input: LiveInput | None = None
        self._sink: GuardedSink | None = None
        self._predictor: Any = None
        self._outputs: dict[str, Any] = {}
        self._handles: list[Any] = []  # services and ground-truth subscriptions: configure -> cleanup
        self._inputs: list[Any] = []  # image (+ camera_info) subscriptions: activate -> deactivate
        self._tf_broadcaster: TransformBroadcaster | None = None
        self._tf_lookup: TfLookup | None = None
        self._input_group = MutuallyExclusiveCallbackGroup()
        self._service_group = MutuallyExclusiveCallbackGroup()
        self._diag_builder = MessageBuilder(RclpyFamily())
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics",
                                               qos_profile(qos_spec("reliable_volatile")))
        self._diag_timer = steady_timer(self, float(self._params["diagnostics_period"]), self._diagnose,
                                        MutuallyExclusiveCallbackGroup())
        self.context.on_shutdown(self.interrupt)  # Ctrl-C: stop publishing before the context is gone
        log.info("vggt_ros created (unconfigured); configure to load the model")

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """Validate runtime changes with the table; unknown names (use_sim_time, ...) are not ours."""
        changes = {p.name: p.value for p in parameters if p.name in SPECS}
        if not changes:
            return SetParametersResult(successful=True)
        try:
            self._params = self._params.replace(allow_read_only=False, **changes)
        except ParamError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        if self._core is not None:  # outputs and TF read params per publication; the rest at configure
            self._core.params = self._params
            log.info("parameters changed: %s (pipeline, input and queue settings apply at the next "
                     "configure)", ", ".join(sorted(changes)))
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------ lifecycle
    def autostart(self) -> None:
        """The `autostart` parameter: configure, then activate, in this process. (slam.launch.py used to
        emit lifecycle ChangeState requests; on a loaded machine the configure request was lost in DDS
        discovery and the node sat unconfigured for good.)"""
        if self._params["autostart"] and self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._build(self._params)
        except Exception as exc:  # a failed configure leaves the node unconfigured, never half-built
            log.error("configure failed: %s", exc if isinstance(exc, factory.PredictorUnavailable)
                      else f"{type(exc).__name__}: {exc}")
            self._release()
            return TransitionCallbackReturn.FAILURE
        p = self._params
        simulated = p["predictor"] == "simulated"
        for warning in (netcheck.socket_buffer_advice(), factory.SIMULATED_NOTE if simulated else None):
            if warning:
                log.warning(warning)
        log.info("configured: predictor %s, map frame %s, TF mode %s", p["predictor"], p["map_frame"],
                 p["publish_tf"])
        return self._entered("inactive", super().on_configure(state))

    def _build(self, params: Params) -> None:
        cancel = threading.Event()
        self._predictor = CancellablePredictor(self._make_predictor(params), cancel)  # weights load here
        window = params["window_anchors"] + params["window_new_frames"]
        for name, spec in TOPICS.items():
            if not name.startswith("/"):  # '/tf' and '/diagnostics' have their own publishers
                self._outputs[name] = self.create_lifecycle_publisher(
                    message_class(spec.msgtype), name, topic_qos(spec, window))
        self._tf_broadcaster = TransformBroadcaster(self, qos=topic_qos(TOPICS["/tf"], window))
        if params["publish_tf"] == "odom":
            self._tf_lookup = TfLookup(self)
        builder = MessageBuilder(RclpyFamily(), params["map_frame"])
        self._sink = GuardedSink(MessageSink(builder, self._write), is_open=self.context.ok)
        self._core = NodeCore(
            params, factory.make_pipeline(params, self._predictor), self._sink, mode="live",
            predictor_name=params["predictor"],
            predictor_note=factory.SIMULATED_NOTE if params["predictor"] == "simulated" else "",
            clock_ns=lambda: self.get_clock().now().nanoseconds,
            tf_lookup=self._tf_lookup, cancel=cancel)
        self._input = LiveInput(self._core, params["use_camera_info"])
        self._handles += [
            self.create_service(SaveMap, "save_map", services.guarded(self._on_save_map),
                                callback_group=self._service_group),
            self.create_service(Trigger, "reset", services.guarded(self._on_reset),
                                callback_group=self._service_group)]

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        assert self._core is not None
        try:
            load = getattr(self._predictor, "load", None)  # weights released by a deactivate come back
            if callable(load):
                load()
        except Exception as exc:
            log.error("activate failed, weights did not load: %s: %s", type(exc).__name__, exc)
            return TransitionCallbackReturn.FAILURE
        self._core.start()
        try:
            assert self._input is not None
            self._inputs = subscribe_inputs(self, self._params, self._input, self._input_group)
        except Exception as exc:  # e.g. an invalid topic name in the parameters
            log.error("activate failed, cannot subscribe: %s: %s", type(exc).__name__, exc)
            self._unsubscribe()
            self._core.stop()
            return TransitionCallbackReturn.FAILURE
        log.info("active: listening on %s", self._inputs[0].topic_name)
        return self._entered("active", super().on_activate(state))  # enables the lifecycle publishers

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._unsubscribe()
        if self._core is not None:
            self._core.stop()  # the window in flight finishes (and publishes) or is cancelled, in time
        self._unload_predictor()
        return self._entered("inactive", super().on_deactivate(state))

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return self._entered("unconfigured", super().on_cleanup(state))

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.shutdown_runtime()
        return self._entered("finalized", super().on_shutdown(state))

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        log.error("error while in/leaving state '%s'; releasing everything", state.label)
        self.shutdown_runtime()
        self._state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS  # -> unconfigured: configure may be tried again

    def destroy_node(self) -> None:
        logbridge.detach(self._log_handler)
        super().destroy_node()

    def _entered(self, state: str, result: TransitionCallbackReturn) -> TransitionCallbackReturn:
        if result == TransitionCallbackReturn.SUCCESS:
            self._state = state
        return result

    def interrupt(self) -> None:
        """Ctrl-C / context shutdown: no input, no output, cancel the window in flight. Non-blocking."""
        if self._core is not None:
            self._core.request_stop(cancel_window=True)
            self._core.close_output()

    def shutdown_runtime(self) -> bool:
        """Stop input, the worker (ONE bounded wait) and the model; safe in any state, more than once.
        False when a worker had to be abandoned inside its window (still running native code)."""
        self._unsubscribe()
        ended = self._core.stop() if self._core is not None else True
        self._release()
        return ended

    def _release(self) -> None:
        """Undo configure: publishers, services, TF, runtime, predictor (weights and CUDA memory)."""
        self._unsubscribe()
        if self._core is not None:
            self._core.request_stop(cancel_window=True)  # never a second wait: stop() already waited
        for pub in self._outputs.values():
            self.destroy_lifecycle_publisher(pub)
        self._outputs = {}
        for handle in self._handles:
            (self.destroy_service if isinstance(handle, Service) else self.destroy_subscription)(handle)
        self._handles = []
        if self._tf_lookup is not None:
            self._tf_lookup.close()
        self._tf_lookup = None
        if self._tf_broadcaster is not None:
            self.destroy_publisher(self._tf_broadcaster.pub_tf)
        self._tf_broadcaster = None
        self._unload_predictor()
        self._core, self._input, self._sink, self._predictor = None, None, None, None

    # ------------------------------------------------------------------ predictor, input, output
    def _make_predictor(self, params: Params) -> Any:
        """The network (weights load now) or, in test mode, the simulated predictor fed by ground truth."""
        if params["predictor"] == "vggt":
            return factory.make_vggt_predictor(params, load=True)  # PredictorUnavailable says why not
        cache = GroundTruthCache()  # TEST MODE: ground truth from the played sample bag (io/sample.py)
        self._handles += subscribe_ground_truth(self, cache, self._input_group)
        return factory.make_simulated_predictor(cache.lookup)

    def _unload_predictor(self) -> None:
        unload = getattr(self._predictor, "unload", None)
        if self._core is not None and self._core.worker_alive:  # an abandoned window holds the model
            log.warning("the predictor is not unloaded: a window abandoned at stop is still running")
            return
        try:
            if callable(unload):
                unload()  # frees the weights' CUDA memory; load() brings them back on activate
        except Exception as exc:
            log.error("predictor unload failed: %s: %s", type(exc).__name__, exc)

    def _unsubscribe(self) -> None:
        for sub in self._inputs:
            self.destroy_subscription(sub)
        self._inputs = []
        if self._input is not None:
            self._input.clear()

    def _write(self, topic: str, msg: Any, stamp: int) -> None:
        """MessageSink writer: TF through the broadcaster, the rest on the lifecycle publishers."""
        if topic == "/tf":
            if self._tf_broadcaster is not None:
                self._tf_broadcaster.sendTransform(list(msg.transforms))
        elif topic in self._outputs:
            self._outputs[topic].publish(msg)

    # ------------------------------------------------------------------ services, diagnostics
    def _on_save_map(self, request: SaveMap.Request, response: SaveMap.Response) -> SaveMap.Response:
        return services.fill_save_map(response, services.save_map(self._core, request.name))

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        response.success, response.message = services.reset(self._core)
        return response

    def _diagnose(self) -> None:
        """Steady-timer callback: /diagnostics in every state, stamped with the ROS clock. Never raises."""
        try:
            self._diag_pub.publish(node_status.diagnostic_array(
                self._diag_builder, self.get_clock().now().nanoseconds, self._state, self._core, NODE_NAME,
                node_status.node_counters(self._input, self._sink)))
        except Exception as exc:
            log.error("diagnostics failed: %s: %s", type(exc).__name__, exc)
