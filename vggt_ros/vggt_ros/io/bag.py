"""Rosbag reading (ROS 1 .bag, ROS 2 .db3 / .mcap / bag directories) and .mcap writing, via rosbags.

Reading: `read_messages(path)` yields `BagMessage(topic, msgtype, stamp_ns, message)` in log-time
order (rosbags AnyReader merges connections by timestamp; ties keep file order, so a replay is
deterministic). Messages are rosbags dataclasses; ROS 1 types are normalised to 'pkg/msg/Name'.
A message that does not deserialise is yielded with `message=None` and `error` set, so the
caller counts it instead of crashing.

Truncated .mcap files (a recording cut short: no summary, no end magic) are refused whole by rosbags.
For them `bag_info(path).truncated` says why, and `bag_topics` / `read_messages` fall back to the `mcap`
package's non-seeking StreamReader, which yields every message of the complete chunks before the cut
(message counts are then those of the readable part). `mcap recover in.mcap -o out.mcap` (the mcap CLI)
rewrites such a file whole.

Writing: `BagWriter(path)` writes one self-contained ROS 2 .mcap file (schemas, channels with
`offered_qos_profiles` metadata, and rosbag2's serialized metadata record), which
`ros2 bag play file.mcap` (Humble: `ros2 bag play -s mcap file.mcap`) and `ros2 bag info` open
directly; a path without the .mcap suffix gives a rosbag2 directory (metadata.yaml + <name>.mcap)
instead. Chunks are zstd-compressed by default (MCAP spec; ~2x smaller for images and depth).
QoS is stored in rosbag2 metadata version 8 form (integer enums), which Humble through Jazzy read.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rosbags.highlevel import AnyReader
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode

from vggt_ros.msgs.qos import QOS, RELIABLE, TRANSIENT_LOCAL, QosSpec
from vggt_ros.msgs.typestore import get_typestore

_ZERO = QosTime(0, 0)  # rmw: 0 = default (infinite deadline / lifespan / lease)


def qos_profile(
    reliability: QosReliability, durability: QosDurability, depth: int
) -> Qos:
    """A KEEP_LAST QoS profile as rosbag2 stores it in offered_qos_profiles."""
    return Qos(
        history=QosHistory.KEEP_LAST,
        depth=depth,
        reliability=reliability,
        durability=durability,
        deadline=_ZERO,
        lifespan=_ZERO,
        liveliness=QosLiveliness.AUTOMATIC,
        liveliness_lease_duration=_ZERO,
        avoid_ros_namespace_conventions=False,
    )


def rosbag_qos(spec: QosSpec) -> Qos:
    """The rosbag2 form of an entry of the project's one QoS table (msgs.qos)."""
    return qos_profile(
        QosReliability.RELIABLE if spec.reliability == RELIABLE else QosReliability.BEST_EFFORT,
        QosDurability.TRANSIENT_LOCAL if spec.durability == TRANSIENT_LOCAL else QosDurability.VOLATILE,
        spec.depth,
    )


# by name, as runtime.publishing.TopicSpec.qos spells them: msgs.qos.QOS, the table the node uses too
QOS_PROFILES: dict[str, Qos] = {kind: rosbag_qos(spec) for kind, spec in QOS.items()}
QOS_SENSOR_DATA = QOS_PROFILES["sensor_data"]  # camera streams: best effort, volatile, 5
QOS_RELIABLE = QOS_PROFILES["reliable_volatile"]  # reliable, volatile, 10
QOS_LATCHED = QOS_PROFILES["reliable_transient_local"]  # map, path: reliable, transient local, 1
QOS_TF = QOS_PROFILES["tf"]  # tf2_ros.TransformBroadcaster: reliable, volatile, 100
QOS_TF_STATIC = QOS_PROFILES["tf_static"]  # reliable, transient local, 1


def default_qos(topic: str) -> Qos:
    """The QoS a topic gets when the writer is not told: /tf, /tf_static, else reliable volatile."""
    if topic == "/tf_static":
        return QOS_TF_STATIC
    if topic == "/tf":
        return QOS_TF
    return QOS_RELIABLE


@dataclass(frozen=True)
class BagMessage:
    """One message of a bag. stamp_ns is the bag's log (receive) time in int ns."""

    topic: str
    msgtype: str
    stamp_ns: int
    message: Any
    error: str | None = None


@dataclass(frozen=True)
class TopicInfo:
    topic: str
    msgtype: str
    count: int
    qos: tuple[Qos, ...]


def _paths(path: str | Path) -> list[Path]:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"bag {p} does not exist")
    return [p]


@dataclass(frozen=True)
class BagInfo:
    """A bag's topics and, for a truncated .mcap read by the fallback, why it ends early (else None)."""

    topics: dict[str, TopicInfo]
    truncated: str | None = None


def _rosbags_topics(path: str | Path) -> dict[str, TopicInfo]:
    out: dict[str, TopicInfo] = {}
    with AnyReader(_paths(path), default_typestore=get_typestore()) as reader:
        for conn in reader.connections:
            qos = tuple(getattr(conn.ext, "offered_qos_profiles", ()) or ())
            prev = out.get(conn.topic)
            count = conn.msgcount + (prev.count if prev else 0)
            out[conn.topic] = TopicInfo(conn.topic, conn.msgtype, count, qos or (prev.qos if prev else ()))
    return out


def _is_mcap_file(path: str | Path) -> bool:
    p = Path(path)
    return p.is_file() and p.suffix == ".mcap"


def bag_info(path: str | Path) -> BagInfo:
    """Topics of a bag; a .mcap that rosbags refuses is read as far as it goes (BagInfo.truncated set).

    Raises what rosbags raises when the file is no bag at all (or the fallback finds no message).
    """
    try:
        return BagInfo(_rosbags_topics(path))
    except Exception as exc:  # rosbags raises several types on unreadable bags
        if not _is_mcap_file(path):
            raise
        stream = _StreamScan(Path(path))
        topics = stream.topics()
        if not topics:
            raise
        return BagInfo(topics, f"{exc} (read {stream.messages} messages up to the cut: {stream.error})")


def bag_topics(path: str | Path) -> dict[str, TopicInfo]:
    """topic -> TopicInfo(msgtype, message count, offered QoS profiles) of a bag (see bag_info)."""
    return bag_info(path).topics


class _StreamScan:
    """The readable records of a (truncated) .mcap, in file order, via mcap.stream_reader."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.messages = 0
        self.error: str | None = None

    def records(self) -> Iterator[tuple[str, str, Any]]:
        """(topic, msgtype, record) per Message record; stops quietly at the first unreadable byte."""
        from mcap.records import Channel, Message, Schema
        from mcap.stream_reader import StreamReader

        schemas: dict[int, str] = {}
        channels: dict[int, tuple[str, str]] = {}
        with open(self.path, "rb") as fh:
            try:
                for rec in StreamReader(fh, record_size_limit=1 << 31).records:
                    if isinstance(rec, Schema):
                        schemas[rec.id] = rec.name
                    elif isinstance(rec, Channel):
                        channels[rec.id] = (rec.topic, schemas.get(rec.schema_id, ""))
                    elif isinstance(rec, Message) and rec.channel_id in channels:
                        self.messages += 1
                        yield (*channels[rec.channel_id], rec)
            except Exception as exc:  # EndOfFile, a cut chunk (zstd, struct), bad magic: the end of the data
                self.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

    def topics(self) -> dict[str, TopicInfo]:
        counts: dict[tuple[str, str], int] = {}
        for topic, msgtype, _ in self.records():
            counts[(topic, msgtype)] = counts.get((topic, msgtype), 0) + 1
        return {t: TopicInfo(t, ty, n, ()) for (t, ty), n in counts.items()}


def _stream_messages(path: Path, wanted: set[str] | None, start_ns: int | None,
                     stop_ns: int | None) -> Iterator[BagMessage]:
    store = get_typestore()
    for topic, msgtype, rec in _StreamScan(path).records():
        if wanted is not None and topic not in wanted:
            continue
        t = int(rec.log_time)
        if (start_ns is not None and t < start_ns) or (stop_ns is not None and t >= stop_ns):
            continue
        try:
            msg = store.deserialize_cdr(rec.data, msgtype)
        except Exception as exc:  # unknown type or corrupt payload: counted by the caller
            yield BagMessage(topic, msgtype, t, None, f"deserialize: {exc}")
            continue
        yield BagMessage(topic, msgtype, t, msg)


def read_messages(path: str | Path, topics: Iterable[str] | None = None, *,
                  start_ns: int | None = None, stop_ns: int | None = None) -> Iterator[BagMessage]:
    """Messages of a ROS 1 or ROS 2 bag in log-time order, optionally only `topics` and only log times in
    [start_ns, stop_ns). A truncated .mcap yields its readable part (file order; see the module docstring).
    """
    wanted = set(topics) if topics is not None else None
    try:
        reader = AnyReader(_paths(path), default_typestore=get_typestore())
        reader.open()
    except Exception:
        if not _is_mcap_file(path):
            raise
        yield from _stream_messages(Path(path), wanted, start_ns, stop_ns)
        return
    try:
        conns = [c for c in reader.connections if wanted is None or c.topic in wanted]
        if not conns:
            return
        for conn, stamp, raw in reader.messages(connections=conns, start=start_ns, stop=stop_ns):
            try:
                msg = reader.deserialize(raw, conn.msgtype)
            except Exception as exc:  # rosbags raises several types for corrupt payloads
                yield BagMessage(conn.topic, conn.msgtype, int(stamp), None, f"deserialize: {exc}")
                continue
            yield BagMessage(conn.topic, conn.msgtype, int(stamp), msg)
    finally:
        reader.close()


class BagSeeker:
    """Messages of one topic at one log time, many times over, cheaply (e.g. ground truth on demand).

    A .mcap with a summary stays open under the mcap library's indexed reader (only the chunk holding
    that time is read: ~5 ms for a 320x240 depth image); anything else (other formats, a truncated
    .mcap) goes through read_messages per call. Not thread-safe: callers hold a lock.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file: Any = None
        self._reader: Any = None
        if _is_mcap_file(self.path):
            try:
                from mcap.reader import make_reader

                self._file = open(self.path, "rb")  # noqa: SIM115  (kept open until close())
                self._reader = make_reader(self._file)
                if self._reader.get_summary() is None:
                    self.close()
            except Exception:  # no summary / truncated: the generic path below
                self.close()

    def at(self, topic: str, log_ns: int) -> Iterator[BagMessage]:
        """The messages of `topic` logged at exactly log_ns."""
        if self._reader is None:
            yield from read_messages(self.path, [topic], start_ns=log_ns, stop_ns=log_ns + 1)
            return
        store = get_typestore()
        try:
            it = self._reader.iter_messages(topics=[topic], starting_at=log_ns, ending_before=log_ns + 1)
        except TypeError:  # mcap < 1.2 names them start_time / end_time
            it = self._reader.iter_messages(topics=[topic], start_time=log_ns, end_time=log_ns + 1)
        for schema, _, rec in it:
            try:
                msg = store.deserialize_cdr(rec.data, schema.name)
            except Exception as exc:  # corrupt payload: counted by the caller
                yield BagMessage(topic, schema.name, int(rec.log_time), None, f"deserialize: {exc}")
                continue
            yield BagMessage(topic, schema.name, int(rec.log_time), msg)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file = None
        self._reader = None


class BagWriter:
    """Writes rosbags messages to a ROS 2 .mcap (single file) or rosbag2 directory.

    Topics are added with `add_topic(topic, msgtype, qos)` or on first `write` with
    `default_qos(topic)`. Use as a context manager; the file appears complete on close.
    """

    def __init__(self, path: str | Path, *, typestore: Any = None, overwrite: bool = False,
                 compress: bool = True) -> None:
        self.path = Path(path)
        self.typestore = typestore or get_typestore()
        self.single_file = self.path.suffix == ".mcap"
        if self.path.exists():
            if not overwrite:
                raise FileExistsError(f"{self.path} exists (pass overwrite=True to replace it)")
            if self.path.is_dir():
                shutil.rmtree(self.path)
            else:
                self.path.unlink()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp: Path | None = None
        if self.single_file:
            self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.stem}.", dir=self.path.parent))
            bag_dir = self._tmp / self.path.stem
        else:
            bag_dir = self.path
        # version 8: integer QoS enums, readable by Humble's rosbag2 as well as Jazzy's
        self._writer = Writer(bag_dir, version=8, storage_plugin=StoragePlugin.MCAP)
        if compress:
            # zstd chunk compression: part of the MCAP spec, read by rosbag2's mcap plugin,
            # rosbags and the mcap library alike
            self._writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        self._bag_dir = bag_dir
        self._connections: dict[str, Any] = {}
        self.counts: dict[str, int] = {}
        self._writer.open()

    def add_topic(self, topic: str, msgtype: str, qos: Qos | None = None) -> None:
        """Register a topic once, with its offered QoS (default_qos(topic) when None)."""
        if topic in self._connections:
            if self._connections[topic].msgtype != msgtype:
                raise ValueError(f"{topic} already has type {self._connections[topic].msgtype}")
            return
        self._connections[topic] = self._writer.add_connection(
            topic,
            msgtype,
            typestore=self.typestore,
            offered_qos_profiles=[qos or default_qos(topic)],
        )
        self.counts[topic] = 0

    def write(self, topic: str, stamp_ns: int, msg: Any) -> None:
        """Serialise (CDR) and write one rosbags message at log time stamp_ns."""
        msgtype = msg.__msgtype__
        self.add_topic(topic, msgtype)
        conn = self._connections[topic]
        if conn.msgtype != msgtype:
            raise ValueError(f"{topic} has type {conn.msgtype}, got a {msgtype}")
        self._writer.write(conn, int(stamp_ns), self.typestore.serialize_cdr(msg, msgtype))
        self.counts[topic] += 1

    def close(self) -> None:
        """Finish the file (summary, metadata) and move it into place."""
        if self._writer is None:
            return
        writer, self._writer = self._writer, None  # type: ignore[assignment]
        writer.close()
        if self._tmp is not None:
            (self._bag_dir / f"{self._bag_dir.name}.mcap").replace(self.path)
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close()
