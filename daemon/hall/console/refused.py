"""The console's refusal, in a module of its own: the writer's named commands (daemon/hall/
commands.py) raise it in the daemon's process, which does not load the console's web code."""
from typing import Any


class Refused(Exception):
    """A request the console turns down: HTTP status, error code (a key of labels.errors)."""

    def __init__(self, status: int, code: str, close: bool = False, **extra: Any) -> None:
        super().__init__(code)
        self.status, self.code, self.close = status, code, close
        self.extra: dict[str, Any] = extra
