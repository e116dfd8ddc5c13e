"""A virtual keypad for the simulated terminals of a kept demo: anyone on this machine can play
the citizen (`hcp terminal press`) while the hall runs.

The demo's process owns the simulated terminals; it serves a Unix socket in the hall's folder
(<folder>/keypad.sock, mode 0600: only the user who runs the demo) that takes one JSON line per
connection, {"terminal", "level", "reason"?}, presses the keys on that terminal as a citizen
would, and answers one JSON line: {"ok": true, "seq", "reason_seq"} or {"ok": false, "error"}.
Real terminals have real keys: this exists only beside simulated ones.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import socketserver
import threading
from collections.abc import Mapping
from typing import Any

from haochaping.daemon.errors import HcpError
from haochaping.protocol import levels
from haochaping.tools.sim.citizens import Terminal

SOCKET = "keypad.sock"
_MAX_LINE = 1024


def socket_path(folder: str) -> str:
    return os.path.join(folder, SOCKET)


class KeypadServer:
    """Serves the keypad for `terminals` ({terminal id: FirmwareTerminal}) until stop()."""

    def __init__(self, folder: str, terminals: Mapping[str, Terminal]) -> None:
        self.path = socket_path(folder)
        self.terminals = dict(terminals)
        self.lock = threading.Lock()   # one citizen at the keys at a time
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)       # left by a demo that was killed
        keypad = self

        class Handler(socketserver.StreamRequestHandler):
            timeout = 60

            def handle(self) -> None:
                line = self.rfile.readline(_MAX_LINE)
                if not line:
                    return   # a probe (`running`): connected and gone
                answer = keypad.answer(line)
                with contextlib.suppress(OSError):   # the caller gave up waiting
                    self.wfile.write(json.dumps(answer, ensure_ascii=False).encode() + b"\n")

        old = os.umask(0o177)
        try:
            self.server = socketserver.ThreadingUnixStreamServer(self.path, Handler)
        finally:
            os.umask(old)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                       name="keypad")

    def start(self) -> KeypadServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def answer(self, line: bytes) -> dict[str, Any]:
        try:
            req = json.loads(line)
            if not isinstance(req, dict):
                raise ValueError("not an object")
        except ValueError:
            return {"ok": False, "error": "a request is one JSON object on one line"}
        term = self.terminals.get(str(req.get("terminal")))
        level, reason = req.get("level"), req.get("reason")
        if term is None:
            return {"ok": False, "error": "no simulated terminal %r here (there are: %s)"
                    % (req.get("terminal"), ", ".join(sorted(self.terminals)))}
        if type(level) is not int or not 1 <= level <= 5:
            return {"ok": False, "error": "level: 1 (非常满意) to 5 (非常不满意)"}
        if reason is not None and (not levels.is_bad(level)
                                   or reason not in dict(levels.REASONS)):
            return {"ok": False, "error": "reason: only after 不满意 or 非常不满意, one of %s"
                    % ", ".join(r for r, _ in levels.REASONS)}
        with self.lock:
            try:
                term.wait_ready()
                seq = term.press(level)
                reason_seq = term.reason(seq, reason) if reason and seq is not None else None
            except HcpError as e:
                return {"ok": False, "error": str(e)}
        if seq is None:
            return {"ok": False, "error": "the terminal refused the press (its journal is full)"}
        return {"ok": True, "seq": seq, "reason_seq": reason_seq}


def running(folder: str) -> bool:
    """Whether a kept demo serves the keypad of the hall in `folder` right now."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(socket_path(folder))
        except OSError:
            return False
    return True


def press(folder: str, terminal: str, level: int, reason: str | None = None,
          timeout: float = 60) -> dict[str, Any]:
    """Press a simulated terminal's keys through the keypad of the demo running in `folder`."""
    path = socket_path(folder)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(path)
        except (FileNotFoundError, ConnectionRefusedError):
            raise HcpError("no simulated terminals run for the hall in %s: start `hcp demo --keep`"
                           " first (a real terminal's keys are on the terminal)" % folder) from None
        s.sendall(json.dumps({"terminal": terminal, "level": level, "reason": reason}).encode()
                  + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    try:
        answer: dict[str, Any] = json.loads(data)
    except ValueError:
        raise HcpError("the demo's keypad gave no answer (did the demo stop?)") from None
    if not answer.get("ok"):
        raise HcpError(str(answer.get("error")))
    return answer
