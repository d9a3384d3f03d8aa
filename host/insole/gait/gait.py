"""Host twin of firmware/insolefw/gait.py: GaitCore's pressure path, over a whole stream.

What ``GaitCore`` does with each pressure sample, on the same integer counts:

* :class:`LayoutRegions` (``insolefw.gait.Layout``): heel, forefoot, medial and lateral
  channels from the sensor positions;
* :func:`pressure_sums` (``GaitCore._process_pressure``): per-sample total, heel,
  forefoot, medial, lateral sums and the moment along the foot, vectorised; a missing
  reading keeps the channel's last value (:func:`hold_missing`);
* :func:`direction_code` (``GaitCore._direction``): the walking direction from the
  roll-over of the centre of pressure (:func:`roll_over_mm`): its load-weighted centre
  over a stance's last 80 ms minus that over its first 80 ms, forward beyond +1/5 of
  the sensors' length, backward beyond −1/5, unknown in between.

The stream-level detectors feed those sums, sample by sample, to the line-by-line
machines of :mod:`insole.gait.contact`, as ``GaitCore`` does:
:class:`PressureStepDetection` (steps: ``_process_pressure`` and ``_emit_step`` for
pressure contacts) and :class:`HeelRaiseDetection` (heel raises). Both take
:class:`~insole.quantise.CountStream` (:func:`insole.quantise.stream_counts`): what the
firmware receives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import numpy as np
import numpy.typing as npt

from insole.gait.contact import (
    STANCE,
    SWING,
    HeelRaiseParameters,
    HeelRaiseRecord,
    HeelRaises,
    PressureContact,
    PressureContactParameters,
)
from insole.layouts import layout_packet
from insole.model import FloatArray, IntArray, Side, WalkingDirection
from insole.protocol import NA_I16, NA_U16, direction_name
from insole.quantise import CountStream, rate_hz_to_chz

BoolArray = npt.NDArray[np.bool_]

MEDIAL_SHARE_LIMIT = 0x400000  # GaitCore halves both sums beyond it, so medial * 200 stays a small int


@dataclass(frozen=True)
class LayoutRegions:
    """What the firmware derives from a LAYOUT: the twin of ``insolefw.gait.Layout``
    (named apart from :class:`insole.layouts.Layout` and the LAYOUT packet).

    Whole-mm positions, heel (rear 30 % of the sensors' length), forefoot (front 40 %),
    medial and lateral channels for the foot's side.
    """

    x_mm: IntArray
    heel: BoolArray
    fore: BoolArray
    medial: BoolArray
    lateral: BoolArray
    span_mm: int

    @classmethod
    def from_positions(cls, x_mm: IntArray, y_mm: IntArray, side: Side) -> LayoutRegions:
        """``Layout.set``: the regions of whole-mm positions (foot frame, y to the left)."""
        span = int(x_mm.max() - x_mm.min())
        rel = x_mm - x_mm.min()
        medial_sign = -1 if side == "left" else 1
        return cls(
            x_mm=x_mm,
            heel=rel * 10 < span * 3,
            fore=rel * 10 > span * 6,
            medial=y_mm * medial_sign > 0,
            lateral=y_mm * medial_sign < 0,
            span_mm=span,
        )

    @classmethod
    def for_counts(cls, data: CountStream) -> LayoutRegions | None:
        """The regions of the stream's layout, as its LAYOUT packet gives them to the
        firmware; None when the layout does not match the stream's pressure channels."""
        n_pressure = 0 if data.pressure is None else data.pressure.shape[1]
        try:
            packet = layout_packet(data.layout, data.side, n_pressure)
        except ValueError:
            return None
        return cls.from_positions(np.array(packet.x_mm, dtype=np.int64), np.array(packet.y_mm, dtype=np.int64), data.side)


@dataclass(frozen=True)
class PressureSums:
    """Per-sample sums the firmware forms in ``GaitCore._process_pressure`` (int64)."""

    total: IntArray  # all channels, counts
    heel: IntArray
    fore: IntArray  # heel channels excluded
    medial: IntArray  # sum of p >> 4 over medial channels
    lateral: IntArray
    moment: IntArray  # sum of (p >> 4) * x_mm


def hold_missing(counts: npt.ArrayLike) -> IntArray:
    """Counts with each n/a reading (0xFFFF) replaced by the channel's last reading (0 before any)."""
    c = np.asarray(counts, dtype=np.int64)
    missing = c == NA_U16
    rows = np.where(missing, 0, np.arange(len(c))[:, None])
    last_valid = np.maximum.accumulate(rows, axis=0)
    held = np.take_along_axis(c, last_valid, axis=0)
    # Rows before a channel's first reading: the firmware starts from 0.
    never = np.maximum.accumulate(~missing, axis=0) == 0
    held[never] = 0
    return held


def pressure_sums(counts: npt.ArrayLike, regions: LayoutRegions | None) -> PressureSums:
    """The firmware's per-sample sums; without a matching layout only the total."""
    p = hold_missing(counts)
    total = p.sum(axis=1)
    zeros = np.zeros(len(p), dtype=np.int64)
    if regions is None or len(regions.x_mm) != p.shape[1]:
        return PressureSums(total, zeros, zeros, zeros, zeros, zeros)
    q = p >> 4
    fore_only = regions.fore & ~regions.heel
    return PressureSums(
        total=total,
        heel=p[:, regions.heel].sum(axis=1),
        fore=p[:, fore_only].sum(axis=1),
        medial=q[:, regions.medial].sum(axis=1),
        lateral=q[:, regions.lateral & ~regions.medial].sum(axis=1),
        moment=q @ regions.x_mm,
    )


def roll_over_mm(early_weight: int, early_moment: int, late_weight: int, late_moment: int) -> int | None:
    """How far the centre of pressure moved toward the toes over a stance (``GaitCore._direction``)."""
    if early_weight <= 0 or late_weight <= 0:
        return None
    return late_moment // late_weight - early_moment // early_weight


def direction_code(early_weight: int, early_moment: int, late_weight: int, late_moment: int, span_mm: int) -> int:
    """``GaitCore._direction``: 1 forward, 2 backward, 0 unknown."""
    shift = roll_over_mm(early_weight, early_moment, late_weight, late_moment)
    if not span_mm or shift is None:
        return 0
    if shift * 5 > span_mm:
        return 1
    if -shift * 5 > span_mm:
        return 2
    return 0


def _pressure_counts(data: CountStream) -> IntArray:
    if data.pressure is None:
        raise ValueError(f"{data.side} stream has no pressure channels")
    return data.pressure.astype(np.int64)


class PressureStepDetection:
    """Steps from pressure as the firmware finds them (STEP records with the pressure flag).

    ``detect(data, sampling_rate_hz)`` runs ``GaitCore``'s pressure path over the
    stream's counts: :class:`~insole.gait.contact.PressureContact` on the summed
    pressure, and per stance the peak, the medial share and the roll-over direction.
    Without a layout that matches the channels only contacts are found (direction
    unknown, no medial share).

    Parameters
    ----------
    parameters
        The contact machine's constants; None for the firmware's (change them only to
        explore, since the firmware will not follow).

    Attributes
    ----------
    ic_index_, to_index_
        Per step: initial contact and toe-off, sample indices.
    direction_
        "forward", "backward" or "unknown" from the roll-over.
    roll_over_mm_
        Centre-of-pressure shift from the first to the last 80 ms of the stance, +
        toward the toes; None without load in a window.
    peak_
        Summed counts, saturating at 65534.
    medial_share_
        0..1; NaN without medial/lateral channels.
    medial_share_code_
        The STEP field: 0.5 % units, None for n/a.
    """

    ic_index_: IntArray
    to_index_: IntArray
    direction_: list[WalkingDirection]
    roll_over_mm_: list[int | None]
    peak_: IntArray
    medial_share_: FloatArray
    medial_share_code_: list[int | None]

    def __init__(self, parameters: PressureContactParameters | None = None) -> None:
        self.parameters = parameters or PressureContactParameters()

    def detect(self, data: CountStream, sampling_rate_hz: float) -> Self:
        counts = _pressure_counts(data)
        regions = LayoutRegions.for_counts(data)
        sums = pressure_sums(counts, regions)
        span = regions.span_mm if regions is not None else 0
        machine = PressureContact(rate_hz_to_chz(sampling_rate_hz), self.parameters)
        ics: list[int] = []
        tos: list[int] = []
        directions: list[WalkingDirection] = []
        peaks: list[int] = []
        shares: list[int | None] = []
        roll_overs: list[int | None] = []
        peak = medial = lateral = 0
        total_l = sums.total.tolist()
        moment_l = sums.moment.tolist()
        medial_l = sums.medial.tolist()
        lateral_l = sums.lateral.tolist()
        for index in range(len(total_l)):
            total = total_l[index]
            event = machine.update(index, total, moment_l[index])
            if event == 1:
                peak = medial = lateral = 0
            if machine.state >= STANCE:
                peak = max(peak, total)
                medial += medial_l[index]
                lateral += lateral_l[index]
                if medial > MEDIAL_SHARE_LIMIT or lateral > MEDIAL_SHARE_LIMIT:
                    medial >>= 1
                    lateral >>= 1
            elif event == 2:
                ic, to = machine.ic_index, machine.to_index
                if ic < 0 or to - ic < machine.min_stance:
                    continue  # _emit_step makes no step of it
                both = medial + lateral
                ics.append(ic)
                tos.append(to)
                peaks.append(min(peak, 65534))
                shares.append((medial * 200 + both // 2) // both if both else None)
                windows = (machine.early_weight, machine.early_moment, machine.late_weight, machine.late_moment)
                directions.append(direction_name(direction_code(*windows, span)))
                roll_overs.append(roll_over_mm(*windows))
        self.ic_index_ = np.array(ics, dtype=np.int64)
        self.to_index_ = np.array(tos, dtype=np.int64)
        self.direction_ = directions
        self.peak_ = np.array(peaks, dtype=np.int64)
        self.medial_share_code_ = shares
        self.roll_over_mm_ = roll_overs
        self.medial_share_ = np.array([np.nan if s is None else s / 200.0 for s in shares])
        return self


class HeelRaiseDetection:
    """Heel-raise repetitions as the firmware finds them (HEEL_RAISE records).

    ``detect(data, sampling_rate_hz)`` runs ``GaitCore``'s pressure path over the
    stream's counts: :class:`~insole.gait.contact.PressureContact` tells when the foot
    is loaded, :class:`~insole.gait.contact.HeelRaises` counts the raises (none without
    a layout that matches the channels).

    Parameters
    ----------
    parameters
        The heel-raise machine's constants; None for the firmware's.
    contact_parameters
        The contact machine's constants; None for the firmware's.
    use_pitch_rate
        Time the hold from the IMU's pitch rate when the stream has an IMU (as the
        firmware does); False matches firmware whose pressure path is not given the IMU
        sample (the hold is then the time the heel was up).

    Attributes
    ----------
    start_index_
        Per repetition: the sample the heel left.
    end_index_
        The sample the heel was back down.
    hold_s_
        Time at the top.
    rep_, set_
        Repetition within its set, and the set (sets are counted from 1).
    """

    start_index_: IntArray
    end_index_: IntArray
    hold_s_: FloatArray
    rep_: IntArray
    set_: IntArray

    def __init__(
        self,
        parameters: HeelRaiseParameters | None = None,
        *,
        contact_parameters: PressureContactParameters | None = None,
        use_pitch_rate: bool = True,
    ) -> None:
        self.parameters = parameters or HeelRaiseParameters()
        self.contact_parameters = contact_parameters or PressureContactParameters()
        self.use_pitch_rate = use_pitch_rate

    def detect(self, data: CountStream, sampling_rate_hz: float) -> Self:
        counts = _pressure_counts(data)
        rate_chz = rate_hz_to_chz(sampling_rate_hz)
        regions = LayoutRegions.for_counts(data)
        records: list[HeelRaiseRecord] = []
        if regions is not None:
            sums = pressure_sums(counts, regions)
            contact = PressureContact(rate_chz, self.contact_parameters)
            raises = HeelRaises(rate_chz, self.parameters)
            if data.imu is not None and self.use_pitch_rate:
                rates = data.imu[:, 4].astype(np.int64).tolist()  # the raw sample: n/a stays NA_I16
            else:
                rates = [NA_I16] * len(counts)
            total_l, heel_l, fore_l = sums.total.tolist(), sums.heel.tolist(), sums.fore.tolist()
            moment_l = sums.moment.tolist()
            for index in range(len(total_l)):
                total = total_l[index]
                contact.update(index, total, moment_l[index])
                # On the ground with weight on it: not in swing, and a quarter of the usual load.
                loaded = contact.state != SWING and total * 4 > contact.load
                if raises.update(index, total, heel_l[index], fore_l[index], loaded, rates[index]):
                    assert raises.record is not None
                    records.append(raises.record)
        table = np.array(records, dtype=np.int64).reshape(-1, 5)
        self.start_index_ = table[:, 0]
        self.end_index_ = table[:, 1]
        self.hold_s_ = table[:, 2] / 1000.0
        self.rep_ = table[:, 3]
        self.set_ = table[:, 4]
        return self
