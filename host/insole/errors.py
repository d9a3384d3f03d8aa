"""The errors the host package raises on purpose, under one root.

Every :class:`InsoleError` carries a message that says what went wrong and, where
there is one, ``advice``: what the user can do about it (as bleak-retry-connector's
errors do). The CLI prints both on one line and exits with ``exit_code``; anything
else that escapes is a bug and keeps its traceback.

::

    InsoleError
    ├── UserError                 a file, argument or value given cannot be used (exit 2)
    ├── ProtocolError             a packet that cannot be encoded or decoded under protocol v1
    │   └── UnsupportedVersionError   the other side speaks another protocol or format version
    ├── LinkError                 the link to an insole failed (port, radio, no answer)
    │   └── LinkTimeout           no answer in time
    ├── DeviceError               the insole answered with an ERROR packet
    └── ToolError                 a program the host runs (mpy-cross, mpremote, micropython) is missing or failed

Subclasses live beside the code that raises them (``PacketError`` in
``insole.protocol``, ``NotARecordingError`` in ``insole.recording`` …).
"""

from __future__ import annotations


class InsoleError(Exception):
    """Root of the host's errors: a message, and advice for the user where there is some."""

    advice: str = ""  # a class's default; an instance may say more
    exit_code: int = 1  # of the CLI when this error ends a command

    def __init__(self, message: str, *, advice: str | None = None) -> None:
        super().__init__(message)
        if advice is not None:
            self.advice = advice

    def one_line(self) -> str:
        """The message and the advice, as the CLI prints them."""
        return f"{self} ({self.advice})" if self.advice else str(self)


class UserError(InsoleError):
    """A file, argument or value the user gave cannot be used; the message says why."""

    exit_code = 2


class ProtocolError(InsoleError):
    """A packet that cannot be encoded or decoded under protocol v1."""


class UnsupportedVersionError(ProtocolError):
    """A packet or recording of a protocol or format version this side does not speak."""

    advice = "bring the insole's firmware (insole flash) and this host package to the same release"


class LinkError(InsoleError):
    """The link to an insole failed: the port or radio could not be opened, or it dropped."""


class LinkTimeout(LinkError):
    """The insole did not answer in time."""

    advice = "check that the insole is switched on, within reach and not busy with another host"


class DeviceError(InsoleError):
    """The insole answered with an ERROR packet: ``code`` (protocol ErrorCode) and ``detail``."""

    def __init__(self, message: str, code: int, detail: int = 0, *, advice: str | None = None) -> None:
        super().__init__(message, advice=advice)
        self.code = code
        self.detail = detail


class ToolError(InsoleError):
    """A program the host runs (mpy-cross, mpremote, the MicroPython unix port) is missing or failed."""
