"""Test helper: read an .mcap with the independent reader (`mcap` + `mcap-ros2-support`).

Nothing of vggt_ros or rosbags is used here, so a round trip through it checks our bytes
against a second implementation of CDR and of the ros2msg schema text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory


@dataclass(frozen=True)
class Decoded:
    topic: str
    schema: str
    log_time: int
    msg: Any
    channel_metadata: dict[str, str]


def read_mcap(path: str | Path) -> list[Decoded]:
    """Every message of the file, decoded, in log-time order."""
    out = []
    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        for schema, channel, message, decoded in reader.iter_decoded_messages(log_time_order=True):
            out.append(
                Decoded(channel.topic, schema.name, message.log_time, decoded, dict(channel.metadata))
            )
    return out
