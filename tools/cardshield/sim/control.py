"""Client of the virtual card host's control socket (see ControlServer.java).
Host-only: these commands exist on the virtual card alone, never as APDUs."""

from __future__ import annotations

import socket
from pathlib import Path

from cardshield.errors import UserError


class ControlError(UserError):
    pass


def send_control(path: Path, command: str, timeout: float = 10.0) -> None:
    reply = query_control(path, command, timeout)
    if reply:
        raise ControlError(f"virtual card answered {command} with unexpected data: {reply}")


def query_control(path: Path, command: str, timeout: float = 10.0) -> str:
    """Send one control line; return what follows "OK" in the reply (empty for most commands)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except OSError as error:
            raise ControlError(f"virtual card control socket {path}: {error}; is the virtual card running?") from None
        sock.sendall(command.encode("ascii") + b"\n")
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    text = reply.decode("ascii", "replace").strip()
    if text != "OK" and not text.startswith("OK "):
        raise ControlError(f"virtual card refused {command}: {text or 'no reply'}")
    return text[3:]
