"""Lab streaming layer: a live session's insoles as LSL streams (pylsl).

Per foot two outlets (docs/calibration.md, section "Lab streaming"):

* ``insole <side> samples`` (type ``Insole``, the insole's rate, float64):
  ``sample_index``, ``p1``…``pN`` (pressure), ``acc_x``…``acc_z`` (m/s², foot frame),
  ``gyro_x``…``gyro_z`` (deg/s); each channel's label, unit and type in the stream's
  XML ``desc/channels``, with the foot side, the device, its firmware and the sensor
  layout (cell positions in mm on this foot) beside them. A missing value is NaN.
* ``insole <side> events`` (type ``Markers``, irregular, one string channel): one JSON
  object per STEP, HEEL_RAISE and CUE event, ``{"type": "STEP", ...}`` with the fields
  of docs/protocol.md by name (units there; sample indices in the samples stream's
  ``sample_index``), n/a as null. The two records of a partial stance go out as they
  came, with the same ``step_number`` (docs/protocol.md, "Partial stances").

Timestamps are the host's LSL clock when the packet arrived (the last sample of a
batch; earlier ones back-dated at the nominal rate by LSL); ``sample_index`` gives the
device's own exact timing. pylsl is imported only when outlets are made, so that a
program (or a test) can point ``LSLAPICFG`` at its configuration first.

Use with a :class:`~insole.session.live.LiveSession`, after ``session.start()``::

    with LslOutlets.for_session(session):
        while ...:
            session.poll(0.1)
        session.stop()
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from insole.errors import ProtocolError, UnsupportedVersionError
from insole.model import FloatArray
from insole.protocol import NA_U16, Cue, HeelRaise, Layout, Samples, Step, body_to_fields, decode_packet
from insole.quantise import chz_to_rate_hz, raw_to_imu

if TYPE_CHECKING:
    from insole.session.live import LiveSession

EVENT_TYPES: dict[type, str] = {Step: "STEP", HeelRaise: "HEEL_RAISE", Cue: "CUE"}
IMU_CHANNELS = (
    ("acc_x", "m/s^2", "Acc"), ("acc_y", "m/s^2", "Acc"), ("acc_z", "m/s^2", "Acc"),
    ("gyro_x", "deg/s", "Gyro"), ("gyro_y", "deg/s", "Gyro"), ("gyro_z", "deg/s", "Gyro"),
)  # fmt: skip


@dataclass(frozen=True)
class FootChannels:
    """What one insole streams: enough to describe its LSL outlets.

    ``pressure_scale`` × counts is the pressure in ``pressure_unit`` (a real insole:
    1.0 and ``"counts"``, raw ADC counts scaled to 16 bit)."""

    side: str
    rate_hz: float
    n_pressure: int
    imu: bool
    device: str = ""
    firmware: str = ""
    layout_name: str = ""
    layout: Layout | None = None  # cell positions on this foot (mm)
    pressure_unit: str = "counts"
    pressure_scale: float = 1.0

    @property
    def channels(self) -> list[tuple[str, str, str]]:
        """(label, unit, type) of every channel of the samples stream, in order."""
        out = [("sample_index", "index", "SampleIndex")]
        out += [(f"p{k + 1}", self.pressure_unit, "Pressure") for k in range(self.n_pressure)]
        if self.imu:
            out += list(IMU_CHANNELS)
        return out

    def values(self, samples: Samples) -> FloatArray:
        """A SAMPLES packet as rows of the samples stream (physical units, NaN for n/a)."""
        rows = np.empty((samples.count, len(self.channels)))
        rows[:, 0] = samples.first_index + np.arange(samples.count)
        pressure = samples.pressure_counts.astype(np.float64) * self.pressure_scale
        pressure[samples.pressure_counts == NA_U16] = np.nan
        rows[:, 1 : 1 + self.n_pressure] = pressure
        if self.imu and samples.imu_raw is not None:
            acc, gyro = raw_to_imu(samples.imu_raw)
            rows[:, 1 + self.n_pressure :] = np.hstack([acc, gyro])
        return rows


def _stream_info(pylsl: Any, foot: FootChannels, source: str) -> tuple[Any, Any]:
    samples = pylsl.StreamInfo(
        f"insole {foot.side} samples", "Insole", len(foot.channels), foot.rate_hz, pylsl.cf_double64,
        f"{source}-{foot.side}-samples",
    )  # fmt: skip
    desc = samples.desc()
    _describe_device(desc, foot)
    channels = desc.append_child("channels")
    for label, unit, kind in foot.channels:
        channel = channels.append_child("channel")
        channel.append_child_value("label", label)
        channel.append_child_value("unit", unit)
        channel.append_child_value("type", kind)
    layout = desc.append_child("layout")
    layout.append_child_value("name", foot.layout_name)
    layout.append_child_value("frame", "x_mm toward the toes from the heel centre, y_mm to the left")
    if foot.layout is not None:
        cells = layout.append_child("cells")
        for k, (x, y) in enumerate(zip(foot.layout.x_mm, foot.layout.y_mm, strict=True)):
            cell = cells.append_child("cell")
            cell.append_child_value("label", f"p{k + 1}")
            cell.append_child_value("x_mm", str(x))
            cell.append_child_value("y_mm", str(y))
    events = pylsl.StreamInfo(
        f"insole {foot.side} events", "Markers", 1, pylsl.IRREGULAR_RATE, pylsl.cf_string, f"{source}-{foot.side}-events"
    )
    edesc = events.desc()
    _describe_device(edesc, foot)
    channel = edesc.append_child("channels").append_child("channel")
    channel.append_child_value("label", "event")
    channel.append_child_value("unit", "json")
    channel.append_child_value("type", "Marker")
    edesc.append_child_value("fields", "docs/protocol.md: STEP, HEEL_RAISE, CUE bodies by name; indices are sample_index")
    return samples, events


def _describe_device(desc: Any, foot: FootChannels) -> None:
    desc.append_child_value("side", foot.side)
    desc.append_child_value("manufacturer", "insole (open firmware)")
    desc.append_child_value("device", foot.device)
    desc.append_child_value("firmware", foot.firmware)
    desc.append_child_value("nominal_rate_hz", f"{foot.rate_hz:g}")


class LslOutlets:
    """A sample and an event outlet per foot; :meth:`publish` pushes one packet."""

    def __init__(self, feet: Sequence[FootChannels], *, source: str = "insole") -> None:
        import pylsl  # type: ignore[import-untyped]  # lazily: LSLAPICFG must be set before liblsl starts

        self._pylsl = pylsl
        self.feet = {foot.side: foot for foot in feet}
        self._samples: dict[str, Any] = {}
        self._events: dict[str, Any] = {}
        for foot in feet:
            samples, events = _stream_info(pylsl, foot, source)
            self._samples[foot.side] = pylsl.StreamOutlet(samples)
            self._events[foot.side] = pylsl.StreamOutlet(events)
        self._session: LiveSession | None = None
        self._hooks: dict[str, tuple[Callable[[bytes], None] | None, Callable[[bytes], None]]] = {}
        self.pushed_samples = dict.fromkeys(self.feet, 0)
        self.pushed_events = dict.fromkeys(self.feet, 0)

    @classmethod
    def for_session(cls, session: LiveSession, *, pressure_scales: Mapping[str, float] | None = None) -> LslOutlets:
        """Outlets for a started session's insoles (their STATUS and layouts), attached
        to its links. ``pressure_scales`` (per side): counts → kPa, as for simulated insoles."""
        from insole.layouts import layout_packet

        feet = []
        for foot in session.feet:
            status = foot.status
            if status is None:
                raise RuntimeError("start the session before making its LSL outlets")
            layout = session.layouts.get(foot.side)
            name = "insole8" if status.n_pressure == 8 else ""
            if layout is None and name:
                layout = layout_packet(name, "left" if foot.side == "left" else "right", status.n_pressure)
            scale = (pressure_scales or {}).get(foot.side)
            feet.append(
                FootChannels(
                    side=foot.side,
                    rate_hz=chz_to_rate_hz(status.rate_chz) if status.rate_chz else foot.rate_hz,
                    n_pressure=status.n_pressure,
                    imu=bool(status.imu),
                    device=foot.link.port,
                    firmware=f"{status.fw_major}.{status.fw_minor}.{status.fw_patch}",
                    layout_name=name,
                    layout=layout,
                    pressure_unit="counts" if scale is None else "kPa",
                    pressure_scale=1.0 if scale is None else scale,
                )
            )
        outlets = cls(feet)
        outlets.attach(session)
        return outlets

    def attach(self, session: LiveSession) -> None:
        """Publishes every packet the session's links receive from now on (beside the
        session's own recorder). Call after ``session.start()``, which sets that hook."""
        self._session = session
        for foot in session.feet:
            before = foot.link.on_packet_bytes
            tap = self._tap(foot.side, before)
            self._hooks[foot.side] = (before, tap)
            foot.link.on_packet_bytes = tap

    def _tap(self, side: str, before: Callable[[bytes], None] | None) -> Callable[[bytes], None]:
        def tap(packet: bytes) -> None:
            if before is not None:
                before(packet)  # the session's recorder first: the recording never waits on LSL
            self.publish(side, packet)

        return tap

    def publish(self, side: str, packet: bytes) -> None:
        """Pushes one protocol packet from the ``side`` insole: SAMPLES to the samples
        outlet, STEP / HEEL_RAISE / CUE to the events outlet; others are ignored."""
        try:
            body = decode_packet(packet).body
        except (ProtocolError, UnsupportedVersionError):
            return  # the link reports it; LSL carries only what decodes
        now = self._pylsl.local_clock()
        if isinstance(body, Samples) and side in self._samples:
            rows = self.feet[side].values(body)
            self._samples[side].push_chunk(rows.tolist(), now)
            self.pushed_samples[side] += len(rows)
        elif type(body) in EVENT_TYPES and side in self._events:
            fields = {"type": EVENT_TYPES[type(body)], "side": side, **body_to_fields(body)}
            self._events[side].push_sample([json.dumps(fields)], now)
            self.pushed_events[side] += 1

    def close(self) -> None:
        """Stops publishing and closes the outlets (consumers see the streams end)."""
        if self._session is not None:
            for foot in self._session.feet:
                before, tap = self._hooks[foot.side]
                if foot.link.on_packet_bytes is tap:  # else the session has stopped (and unhooked) already
                    foot.link.on_packet_bytes = before
            self._session = None
        self._samples.clear()
        self._events.clear()

    def __enter__(self) -> LslOutlets:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
