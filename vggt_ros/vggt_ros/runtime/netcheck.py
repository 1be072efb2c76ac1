"""Will camera images fit through DDS? The kernel's socket receive buffer limit (ROS-free).

DDS over UDP reassembles a large sample in the socket receive buffer; Linux caps what a process may
ask for at net.core.rmem_max (212992 bytes by default, less than one 1920x1080 rgb8 image), and an
image that does not fit is lost inside DDS before the node sees it, so nothing can count it. The
shipped Cyclone config (config/cyclonedds_loopback.xml) requests RECOMMENDED_RMEM_MAX.
"""

from __future__ import annotations

from pathlib import Path

RMEM_MAX_PATH = Path("/proc/sys/net/core/rmem_max")
RECOMMENDED_RMEM_MAX = 64 * 1024 * 1024  # bytes: two 3840x2160 rgb8 images (24.9 MB each) and then some
UHD_RGB8_BYTES = 3840 * 2160 * 3


def rmem_max(path: Path = RMEM_MAX_PATH) -> int | None:
    """The kernel's net.core.rmem_max in bytes, or None where it cannot be read (not Linux)."""
    try:
        return int(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def socket_buffer_advice(path: Path = RMEM_MAX_PATH, need_bytes: int = RECOMMENDED_RMEM_MAX) -> str | None:
    """A warning when rmem_max is below `need_bytes` (None when fine or unknown)."""
    have = rmem_max(path)
    if have is None or have >= need_bytes:
        return None
    return (f"net.core.rmem_max is {have} bytes: DDS can lose camera images larger than about that "
            f"(one 1920x1080 rgb8 image is 6220800 bytes) before this node sees them; run "
            f"'sudo sysctl -w net.core.rmem_max={need_bytes}' and use config/cyclonedds_loopback.xml "
            f"(README: Large images)")
