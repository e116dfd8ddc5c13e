"""The console's side of a kept demo's virtual keypad ([console] demo_keypad = true): the index
page's "simulated terminal" panel posts here, and this passes the press on to the keypad that
`hcp demo --keep` serves beside its simulated terminals, a Unix socket in the hall's folder
(keypad.sock; the protocol of tools/sim/keypad.py: one JSON line in, one JSON line out).

The daemon knows nothing of simulators: it forwards to that socket and reports its answer. With
no demo serving it (a real hall, or a demo that stopped), the panel says so.
"""
from __future__ import annotations

import json
import os
import socket
from typing import Any

from haochaping.daemon.errors import HcpError

SOCKET = "keypad.sock"  # in the folder of hall.toml, as tools/sim/keypad.py serves it
_MAX_ANSWER = 4096


def socket_path(config_path: str) -> str:
    return os.path.join(os.path.dirname(config_path), SOCKET)


def press(path: str, terminal: str, level: int, reason: str | None,
          timeout: float = 15) -> dict[str, Any]:
    """Press `level` (then `reason`) on a simulated terminal: the keypad's answer,
    {"ok": true, "seq", ...} or {"ok": false, "error"}. HcpError when no keypad answers."""
    request: dict[str, Any] = {"terminal": terminal, "level": level}
    if reason:
        request["reason"] = reason
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(path)
        except OSError:
            raise HcpError("no demo keypad at %s (is `hcp demo --keep` running?)" % path) from None
        try:
            s.sendall(json.dumps(request).encode() + b"\n")
            answer = s.makefile("rb").readline(_MAX_ANSWER)
        except OSError as e:
            raise HcpError("the demo keypad did not answer: %s" % e) from None
    try:
        out = json.loads(answer)
    except ValueError:
        out = None
    if not isinstance(out, dict):
        raise HcpError("the demo keypad gave no answer (did the demo stop?)")
    return out
