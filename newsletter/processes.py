"""Who a worker is, and whether a process on this host still runs: how the leases of a killed
sender are recognised and taken over; and the environment of the processes we start."""

from __future__ import annotations

import os
import site
import socket
import uuid
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """True while a process with this id exists (also when it belongs to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def worker_identity() -> str:
    """``host:pid:nonce`` — lets a restarted sender on the same host see its predecessor died."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_dead(owner: str) -> bool:
    """True when ``owner`` names a process on this host that no longer runs."""
    host, _, rest = owner.partition(":")
    pid_text = rest.split(":", 1)[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    if not pid_alive(int(pid_text)):
        return True
    return int(pid_text) == os.getpid() and owner != _CURRENT_OWNER


_CURRENT_OWNER = worker_identity()


def current_owner() -> str:
    return _CURRENT_OWNER


def child_environment() -> dict[str, str]:
    """The environment for a ``python -m newsletter…`` child (a send's helper, an address
    validation worker): ours, and when this package is not installed in a site directory
    (a checkout run in place), its folder on the child's import path."""
    package_root = str(Path(__file__).resolve().parents[1])
    if package_root in {str(Path(p).resolve()) for p in site.getsitepackages()}:
        return dict(os.environ)
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, path]))}
