"""Talking to one insole: requests and answers, streams, lost events, its clock.

* :mod:`~insole.link.base` — :class:`InsoleLink`, what every link offers (typed
  requests, polling), with one sequence counter and one request/answer matcher;
* :mod:`~insole.link.serial` — :class:`SerialLink`: USB serial or the simulated board's pty;
* :mod:`~insole.link.ble` — the BLE client (bleak): scan, pair, reconnect, backfill;
  :mod:`~insole.link.gatt` — the insole's GATT table, as the firmware serves it;
* :mod:`~insole.link.backfill` — gaps in the device's sequence numbers and GET_EVENTS;
* :mod:`~insole.link.clocksync` — each device clock's offset and drift on the host's clock.
"""

from insole.link.base import InsoleLink, PendingRequest, SeqCounter
from insole.link.serial import SerialLink

__all__ = ["InsoleLink", "PendingRequest", "SeqCounter", "SerialLink"]
