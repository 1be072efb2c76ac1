"""config/cyclonedds_loopback.xml: valid Cyclone 0.10 XML, loopback only, sized for 3840x2160 rgb8 images;
and the rmem_max check the node logs at configure (runtime/netcheck.py). ROS-free.

Element paths are the ones Cyclone DDS 0.10.x documents (docs/manual/options.md of releases/0.10.x,
the version Humble ships); an unknown element is a fatal configuration error there.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from vggt_ros.runtime.netcheck import RECOMMENDED_RMEM_MAX, UHD_RGB8_BYTES, rmem_max, socket_buffer_advice

CONFIG = Path(__file__).resolve().parents[1] / "config" / "cyclonedds_loopback.xml"
NS = "{https://cdds.io/config}"
CYCLONE_010_PATHS = {  # every element path the file may use (Cyclone DDS 0.10 options.md)
    "Domain", "Domain/General", "Domain/General/Interfaces", "Domain/General/Interfaces/NetworkInterface",
    "Domain/General/AllowMulticast", "Domain/General/DontRoute", "Domain/General/MaxMessageSize",
    "Domain/General/FragmentSize", "Domain/Discovery", "Domain/Discovery/ParticipantIndex",
    "Domain/Discovery/MaxAutoParticipantIndex", "Domain/Discovery/Peers", "Domain/Discovery/Peers/Peer",
    "Domain/Internal", "Domain/Internal/SocketReceiveBufferSize",
}
UNITS = {"B": 1, "kB": 1024, "KiB": 1024, "MB": 2**20, "MiB": 2**20, "GB": 2**30, "GiB": 2**30}


def size_bytes(text: str) -> int:
    """Cyclone's number-with-unit ('64MiB', '65500B'); the unit is mandatory."""
    m = re.fullmatch(r"\s*(\d+)\s*(B|kB|KiB|MB|MiB|GB|GiB)\s*", text)
    assert m, f"not a Cyclone size with unit: {text!r}"
    return int(m.group(1)) * UNITS[m.group(2)]


@pytest.fixture(scope="module")
def root() -> ET.Element:
    return ET.parse(CONFIG).getroot()


def _paths(elem: ET.Element, prefix: str = "") -> set[str]:
    out = set()
    for child in elem:
        name = prefix + child.tag.replace(NS, "")
        out.add(name)
        out |= _paths(child, name + "/")
    return out


def test_the_config_parses_and_uses_only_cyclone_010_elements(root: ET.Element) -> None:
    assert root.tag == f"{NS}CycloneDDS"
    assert _paths(root) <= CYCLONE_010_PATHS, _paths(root) - CYCLONE_010_PATHS


def test_every_packet_stays_on_loopback(root: ET.Element) -> None:
    nics = root.findall(f".//{NS}NetworkInterface")
    assert [(n.get("address"), n.get("multicast")) for n in nics] == [("127.0.0.1", "false")]
    assert root.findtext(f".//{NS}AllowMulticast") == "false" and root.findtext(f".//{NS}DontRoute") == "true"
    assert [p.get("address") for p in root.findall(f".//{NS}Peer")] == ["127.0.0.1"]


def test_a_3840x2160_rgb8_image_fits(root: ET.Element) -> None:
    rcv = root.find(f".//{NS}Internal/{NS}SocketReceiveBufferSize")
    assert rcv is not None
    assert rcv.get("min") == "default"  # never refuse to start on an untuned kernel
    assert size_bytes(rcv.get("max", "")) == RECOMMENDED_RMEM_MAX >= 2 * UHD_RGB8_BYTES
    max_msg = size_bytes(root.findtext(f".//{NS}MaxMessageSize") or "")
    frag = size_bytes(root.findtext(f".//{NS}FragmentSize") or "")
    assert 1025 <= frag < max_msg <= 65507  # one UDP datagram on loopback, DDSI minimum fragment 1025
    assert UHD_RGB8_BYTES / frag < 500  # packets per 4K image


def test_rmem_max_advice(tmp_path: Path) -> None:
    f = tmp_path / "rmem_max"
    f.write_text("212992\n")  # the Linux default
    assert rmem_max(f) == 212992
    advice = socket_buffer_advice(f)
    assert advice is not None and "212992" in advice and f"rmem_max={RECOMMENDED_RMEM_MAX}" in advice
    f.write_text(f"{RECOMMENDED_RMEM_MAX}\n")
    assert socket_buffer_advice(f) is None
    assert socket_buffer_advice(tmp_path / "absent") is None  # not Linux: nothing to say
