"""Typed errors of the host package."""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix (bad file, bad argument); the CLI prints it without a traceback."""


class ProtocolError(Exception):
    """A packet that cannot be encoded or decoded under protocol v1."""


class UnsupportedVersionError(ProtocolError):
    """A packet or recording of a protocol version this side does not speak."""


class DeviceError(Exception):
    """The device answered with an ERROR packet."""

    def __init__(self, message: str, code: int, detail: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.detail = detail


class LinkTimeout(Exception):
    """The device did not answer in time."""
