"""The project's own exceptions. Library code raises these; only the CLI turns them into one
clear line for the user (tools/cli)."""


class HcpError(Exception):
    """Something the user can fix; the message says what to do."""


class ConfigError(HcpError):
    """The configuration file is wrong; the message lists every problem at once."""


class InvalidInput(HcpError):
    """A value the caller sent is not acceptable (HTTP 400); the message names it, and `field`
    is its name when it is one field (the window API answers it as "field")."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
