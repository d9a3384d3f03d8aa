"""Host twin of firmware/insolefw/imu.py: still phases, toe-off and initial contact, strides of a whole stream.

One foot-mounted 6-axis IMU (foot frame: x toes, y left, z up; any mounting tilt)
gives, per stride (docs/gait-imu.md has the method and its validation):

1. **Still phases** (:class:`ZeroVelocityDetection`): a sample is *in stance*
   (:func:`stance_samples`) when the gyroscope's L1 norm is below
   ``stance_gyr_threshold_dps``, its y rate (the mount's pitch axis) below
   ``stance_pitch_threshold_dps`` and ``|a|`` within ``1 ± still_acc_threshold_g``; the
   foot is *still* after ``still_window_ms`` of such samples in a row. A sensor on the
   dorsum of a shoe rattles on its strap through some walkers' stances (roll and yaw
   rates of ±200 deg/s, pitch within a few deg/s), hence the loose L1 norm and the
   tight pitch rate. The stride's integration starts and ends at slots that pass the
   stricter :func:`quiet_samples` at ``still_gyr_threshold_dps``. A stride is the
   motion between two still phases if its pitch rate peaks above
   ``swing_threshold_dps`` and its swing lobe sweeps at least ``swing_min_deg``.
2. **Toe-off and initial contact** (:class:`ImuEventDetection`) from the pitch rate
   (about the foot's medio-lateral axis, levelled with the stance's gravity so a tilted
   mount does not matter). Its zero crossings split a stride into lobes; the foot lies
   flat at both ends, so the swing lobe sweeps as much pitch as all others together and
   is the one of largest area. Toe-off is at the crossing that opens it, initial contact
   at the one that closes it. Walking forward the swing lobe is negative (toes rotate
   up) and toe-off precedes its crossing by ``push_lead_ms`` (the last of the push-off);
   backward walking is forward walking mirrored in time, so the offsets swap ends.
3. **The stride's analysis** (:mod:`insole.gait.stride`, the firmware's
   ``ImuTracker.analyse``): trajectory, direction, foot progression angle, stride
   length and speed.

:class:`ImuTracker` runs all of it over one foot's stream, stride by stride, and
assembles the steps the device emits from the IMU alone. It works on the protocol's
integer counts (mg, 0.1 deg/s) as the firmware receives them (:func:`imu_counts`), so
still phases and events are the firmware's sample for sample. The firmware keeps raw
samples in a ring of ``ring_capacity_slots`` slots, one sample per slot up to
``decimate_above_hz`` and the floor-average of two above; the stride work reads those
slots, and so does this twin (:func:`ring_slots`). The constants are the firmware's,
stated once here in :class:`ImuTrackerParameters`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Self

import numpy as np
import numpy.typing as npt

from insole.gait.contact import PressureContactParameters
from insole.gait.stride import (
    AXIS_ONE,
    Arithmetic,
    FloatType,
    FootProgressionAngle,
    StrideParameters,
    StrideTrajectory,
    gravity_mean_mg,
    pitch_axis_q12,
)
from insole.gait.units import samples_for_ms
from insole.model import FloatArray, IntArray, WalkingDirection
from insole.protocol import NA_I16
from insole.quantise import GYRO_COUNTS_PER_DPS, CountStream, rate_hz_to_chz

BoolArray = npt.NDArray[np.bool_]

MG_PER_G = 1000.0


@dataclass(frozen=True)
class ImuTrackerParameters:
    """The firmware's ``ImuTracker`` constants (``insolefw/imu.py``).

    Parameters
    ----------
    stance_gyr_threshold_dps
        In the stance test, a sample's ``|gx| + |gy| + |gz|`` stays below this ...
    stance_pitch_threshold_dps
        ... its ``|gy|`` (the sensor's pitch axis) below this ...
    still_acc_threshold_g
        ... and its ``|a|`` within 1 ± this.
    still_window_ms
        The foot is still after this long of quiet samples in a row.
    report_ms
        A stride is analysed once its still phase lasted this long (or ended).
    swing_threshold_dps
        A stride's pitch rate peaks above this ...
    swing_min_deg
        ... and its swing lobe sweeps at least this much pitch.
    still_gyr_threshold_dps
        The integration's calm slots (``insolefw/stride.py``) stay below this: a
        foot-dorsum sensor rattles on its strap through some walkers' stances, which the
        looser stance test lets through, but the integration starts where the foot is calm.
    zupt_search_ms
        The stride starts at the calmest sample of at most this much stillness before it.
    rest_ms
        A still phase this long teaches the gyroscope bias ...
    rest_max_samples
        ... averaged over at most this many samples.
    ring_capacity_slots
        Slots in the ring of raw samples; strides that do not fit get no analysis.
    decimate_above_hz
        Above this rate a ring slot holds the floor-average of two samples.
    push_lead_ms
        Toe-off precedes the swing lobe's opening crossing (walking forward) by this.
    contact_lag_ms
        Initial contact follows its closing crossing (walking forward) by this.
    """

    still_gyr_threshold_dps: float = 50.0
    stance_gyr_threshold_dps: float = 100.0
    stance_pitch_threshold_dps: float = 25.0
    still_acc_threshold_g: float = 0.2
    still_window_ms: int = 50
    report_ms: int = 130
    swing_threshold_dps: float = 100.0
    swing_min_deg: float = 20.0
    zupt_search_ms: int = 100
    rest_ms: int = 1000
    rest_max_samples: int = 4096
    ring_capacity_slots: int = 256
    decimate_above_hz: float = 130.0
    push_lead_ms: int = 17
    contact_lag_ms: int = 0


def _sixteenths_for_ms(ms: int, rate_chz: int) -> int:
    """Samples in 1/16 units, as the firmware keeps event offsets."""
    return (ms * rate_chz * 16 + 50000) // 100000


def ring_shift(rate_chz: int, parameters: ImuTrackerParameters) -> int:
    """log2 of the samples per ring slot: 1 above ``decimate_above_hz``."""
    return 1 if rate_chz > rate_hz_to_chz(parameters.decimate_above_hz) else 0


def imu_counts(raw: npt.ArrayLike) -> IntArray:
    """(n, 6) ``ax ay az`` [mg], ``gx gy gz`` [0.1 deg/s] as ``ImuTracker.update`` reads
    them: a missing sample (n/a) repeats the last complete one, as on the device."""
    counts = np.asarray(raw, dtype=np.int64)
    complete = (counts[:, 0] != NA_I16) & (counts[:, 3] != NA_I16)
    if not complete.all():
        source = np.maximum.accumulate(np.where(complete, np.arange(len(counts)), -1))
        filled = np.zeros_like(counts)  # before the first complete sample: zeros, as the device's buffer
        filled[source >= 0] = counts[source[source >= 0]]
        counts = filled
    return counts


def ring_slots(counts: IntArray, shift: int) -> IntArray:
    """What the firmware's ring holds: each sample, or the floor-average of each pair."""
    if not shift:
        return counts
    n = len(counts) // 2 * 2
    slots = (counts[0:n:2] + counts[1:n:2]) >> 1
    if len(counts) % 2:
        slots = np.vstack([slots, counts[-1:]])
    return slots


def quiet_samples(counts: IntArray, parameters: ImuTrackerParameters, gyr_threshold_dps: float) -> BoolArray:
    """|gx| + |gy| + |gz| below ``gyr_threshold_dps`` and |a| within 1 ± ``still_acc_threshold_g``, on counts."""
    gyr = round(gyr_threshold_dps * GYRO_COUNTS_PER_DPS)
    lo = round((1.0 - parameters.still_acc_threshold_g) * MG_PER_G) ** 2
    hi = round((1.0 + parameters.still_acc_threshold_g) * MG_PER_G) ** 2
    acc = counts[:, :3]
    a2 = (acc * acc).sum(axis=1)
    quiet: BoolArray = (np.abs(counts[:, 3:]).sum(axis=1) < gyr) & (a2 >= lo) & (a2 <= hi)
    return quiet


def stance_samples(counts: IntArray, parameters: ImuTrackerParameters) -> BoolArray:
    """The firmware's per-sample stance test: quiet at the stance threshold, and the
    sensor's y rate (its pitch axis when mounted as designed) within
    ``stance_pitch_threshold_dps``."""
    pitch = round(parameters.stance_pitch_threshold_dps * GYRO_COUNTS_PER_DPS)
    quiet: BoolArray = quiet_samples(counts, parameters, parameters.stance_gyr_threshold_dps)
    return quiet & (np.abs(counts[:, 4]) < pitch)


# --------------------------------------------------------------------------- still phases


class ZeroVelocityDetection:
    """Still phases: runs of at least ``still_window_ms`` quiet samples.

    ``detect(counts, sampling_rate_hz)`` takes (n, 6) IMU counts (:func:`imu_counts`).

    Parameters
    ----------
    parameters
        The still test and window; None for the firmware's.

    Attributes
    ----------
    quiet_
        Per sample: it passes the still test.
    run_start_index_, run_end_index_
        First and last sample (inclusive) of each still phase.
    window_samples_
        ``still_window_ms`` in samples: a still phase is confirmed at its start + this - 1.
    """

    quiet_: BoolArray
    run_start_index_: IntArray
    run_end_index_: IntArray
    window_samples_: int

    def __init__(self, parameters: ImuTrackerParameters | None = None) -> None:
        self.parameters = parameters or ImuTrackerParameters()

    def detect(self, counts: IntArray, sampling_rate_hz: float) -> Self:
        quiet = stance_samples(counts, self.parameters)
        n = samples_for_ms(self.parameters.still_window_ms, rate_hz_to_chz(sampling_rate_hz)) or 1
        edges = np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]]))
        starts = np.flatnonzero(edges == 1)
        ends = np.flatnonzero(edges == -1) - 1
        long_enough = ends - starts + 1 >= n
        self.quiet_ = quiet
        self.window_samples_ = n
        self.run_start_index_ = starts[long_enough].astype(np.int64)
        self.run_end_index_ = ends[long_enough].astype(np.int64)
        return self


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class SwingEvents:
    """What the firmware follows online through one stride's motion."""

    swing_deg: float  # pitch swept by the swing lobe, signed (negative: toes up, forward)
    swing_area: int  # the same as the device keeps it: sum of |pitch rate| [0.1 deg/s]
    peak_dps: float  # largest |pitch rate| of the motion
    before16: int  # zero crossing that opens the swing lobe, 1/16 samples
    after16: int  # zero crossing that closes it
    to_index: int
    ic_index: int


class ImuEventDetection:
    """Toe-off and initial contact of one stride from the zero crossings of its swing lobe.

    ``detect(pitch, motion_start, scan_end, still_start, sampling_rate_hz, pitch_start)``
    scans the motion ``[motion_start, scan_end]`` of ``pitch`` (the pitch rate, 0.1
    deg/s, from sample ``pitch_start`` on; it must hold the sample before the motion)
    as the device does sample by sample; ``still_start`` is the first sample of the
    still phase that ends it.

    Parameters
    ----------
    parameters
        Push-off lead and contact lag; None for the firmware's.

    Attributes
    ----------
    events_
        The swing lobe, its crossings and the stride's toe-off and initial contact.
    """

    events_: SwingEvents

    def __init__(self, parameters: ImuTrackerParameters | None = None) -> None:
        self.parameters = parameters or ImuTrackerParameters()

    def detect(
        self,
        pitch: IntArray,
        motion_start: int,
        scan_end: int,
        still_start: int,
        sampling_rate_hz: float,
        pitch_start: int = 0,
    ) -> Self:
        h = pitch[motion_start - 1 - pitch_start : scan_end + 1 - pitch_start]
        negative = h < 0
        flips = negative[1:] != negative[:-1]  # per scanned sample: a crossing since the one before
        crossing = np.flatnonzero(flips)  # between h[c] and h[c + 1]
        h0 = h[crossing]
        h1 = h[crossing + 1]
        opening16 = np.concatenate([[-16], 16 * (crossing - 1) + (16 * h0) // (h0 - h1)])  # from motion_start
        lobe = np.cumsum(flips)
        scanned = h[1:]
        area = np.bincount(lobe, weights=np.abs(scanned))
        best = int(np.argmax(area))  # the first largest, as the device's strict '>'
        before16 = int(opening16[best])
        after16 = int(opening16[best + 1]) if best + 1 < len(opening16) else 16 * (still_start - motion_start)
        forward = bool(negative[1:][lobe == best][0])
        rate_chz = rate_hz_to_chz(sampling_rate_hz)
        lead16 = _sixteenths_for_ms(self.parameters.push_lead_ms, rate_chz)
        lag16 = _sixteenths_for_ms(self.parameters.contact_lag_ms, rate_chz)
        # Backward walking is forward walking mirrored in time: the offsets swap ends.
        to16 = before16 - lead16 if forward else before16 + lag16
        ic16 = after16 + lag16 if forward else after16 + lead16
        swept = float(area[best]) / GYRO_COUNTS_PER_DPS / sampling_rate_hz
        self.events_ = SwingEvents(
            swing_deg=-swept if forward else swept,
            swing_area=int(area[best]),
            peak_dps=float(np.abs(scanned).max()) / GYRO_COUNTS_PER_DPS,
            before16=before16,
            after16=after16,
            to_index=motion_start + ((to16 + 8) >> 4),
            ic_index=motion_start + ((ic16 + 8) >> 4),
        )
        return self


# --------------------------------------------------------------------------- the whole stream


@dataclass(frozen=True)
class ImuStep:
    """A stance as the firmware reports it from the IMU alone (one STEP record); an
    index of -1 is n/a, a stance open at that end."""

    ic_index: int
    to_index: int
    fpa_deg: float
    direction: WalkingDirection
    stride_length_m: float
    speed_ms: float


def _step(into: _Stride, to_index: int) -> ImuStep:
    """The stance the stride ``into`` ended in, up to ``to_index`` (-1: open); the
    stride's results belong to it when the stride ended inside it."""
    ic = into.ic_index
    inside = ic <= into.end_index and (to_index < 0 or into.end_index <= to_index)
    return ImuStep(
        ic_index=ic,
        to_index=to_index,
        fpa_deg=into.fpa_deg if inside else math.nan,
        direction=into.direction if inside else "unknown",
        stride_length_m=into.length_m if inside else math.nan,
        speed_ms=into.speed_ms if inside else math.nan,
    )


@dataclass(frozen=True)
class _Stride:
    """One analysed stride, as the results' columns take it."""

    to_index: int
    ic_index: int
    end_index: int
    start_zupt: int
    end_zupt: int
    fpa_deg: float
    fpa_out_deg: float
    length_m: float
    speed_ms: float
    direction: WalkingDirection
    heading_deg: float
    swing_deg: float


class ImuTracker:
    """The firmware's IMU path on one foot's stream, stride by stride.

    ``detect(data, sampling_rate_hz)`` takes the stream's counts as the firmware
    receives them (:func:`insole.quantise.stream_counts`; n/a samples repeat the last
    complete one, :func:`imu_counts`) and finds each stride: a motion between two still
    phases with a swing, analysed when the firmware would (``report_ms`` into the still
    phase after it, or when that ends first) if the ring still holds it.

    Parameters
    ----------
    parameters
        The tracker's constants; None for the firmware's.
    stride_parameters
        The per-stride analysis's constants; None for the firmware's.
    yaw_offset_deg
        The sensor's mounting yaw, taken off every foot angle (the firmware's
        ``yaw_offset_cdeg`` / 100).
    arithmetic, dtype
        How :class:`~insole.gait.stride.StrideTrajectory` integrates: ``"fixed"`` is the
        firmware's integers, bit for bit; ``"float"`` floating point of ``dtype``.

    Attributes
    ----------
    to_index_
        Per stride: toe-off of the stance before it.
    ic_index_
        Initial contact of the stance after it.
    stride_end_index_
        The last still sample when the device analysed it: inside the stance the stride
        ended in.
    start_index_, end_index_
        Its calmest still samples, where the integration starts and ends.
    fpa_deg_, fpa_out_deg_, stride_length_m_, direction_
        :class:`~insole.gait.stride.FootProgressionAngle`'s results.
    speed_ms_
        Stride length over the time between this and the previous stride's initial
        contacts (NaN for the first, and over ``max_stride_time_ms``).
    heading_change_deg_
        The foot's turn from the stance before to the stance after.
    swing_deg_
        Pitch swept by the swing lobe, signed (negative: walking forward).
    steps_
        The stances as the firmware emits them from IMU data alone
        (``GaitCore.process`` without pressure): the initial contact from one stride,
        the toe-off from the next; the stride that ended inside the stance gives it its
        angle, length and direction; stances shorter than the pressure contact's
        ``min_stance_ms`` make no step. The stream's first toe-off has no contact
        (``ic_index`` -1); a stance the foot comes to rest in (``rest_ms``) makes two
        records, its contact at the rest (``to_index`` -1), its toe-off when the foot
        moves on (``ic_index`` -1).
    """

    to_index_: IntArray
    ic_index_: IntArray
    stride_end_index_: IntArray
    start_index_: IntArray
    end_index_: IntArray
    fpa_deg_: FloatArray
    fpa_out_deg_: FloatArray
    stride_length_m_: FloatArray
    speed_ms_: FloatArray
    direction_: npt.NDArray[np.object_]
    heading_change_deg_: FloatArray
    swing_deg_: FloatArray
    steps_: list[ImuStep]

    def __init__(
        self,
        parameters: ImuTrackerParameters | None = None,
        stride_parameters: StrideParameters | None = None,
        *,
        yaw_offset_deg: float = 0.0,
        arithmetic: Arithmetic = "fixed",
        dtype: FloatType = float,
    ) -> None:
        self.parameters = parameters or ImuTrackerParameters()
        self.stride_parameters = stride_parameters or StrideParameters()
        self.yaw_offset_deg = yaw_offset_deg
        self.arithmetic = arithmetic
        self.dtype = dtype

    def detect(self, data: CountStream, sampling_rate_hz: float) -> Self:
        if data.imu is None:
            raise ValueError(f"{data.side} stream has no IMU")
        p = self.parameters
        rate = sampling_rate_hz
        rate_chz = rate_hz_to_chz(rate)
        counts = imu_counts(data.imu)
        zupt = ZeroVelocityDetection(p).detect(counts, rate)
        events = ImuEventDetection(p)
        starts, ends = zupt.run_start_index_, zupt.run_end_index_
        n_window = zupt.window_samples_
        n_report = samples_for_ms(p.report_ms, rate_chz) or 1
        search = samples_for_ms(p.zupt_search_ms, rate_chz) or 1
        rest = samples_for_ms(p.rest_ms, rate_chz)
        max_stride = samples_for_ms(self.stride_parameters.max_stride_time_ms, rate_chz)
        swing_area = round(p.swing_min_deg) * 10 * rate_chz // 100
        shift = ring_shift(rate_chz, p)
        slots = ring_slots(counts, shift)
        slot_quiet = quiet_samples(slots, p, p.still_gyr_threshold_dps)
        slot_l1 = np.abs(slots[:, 3:]).sum(axis=1)
        half = samples_for_ms(self.stride_parameters.gravity_half_window_ms, rate_chz) >> shift
        dt = (100 << shift) / rate_chz  # as the firmware computes it
        n = len(counts)

        axis = (0, AXIS_ONE, 0)
        rest_sums = (0, 0, 0, 0)
        previous_ic = -1
        strides: list[_Stride] = []
        rested: set[int] = set()  # strides whose contact's stance came to rest (IMU_REST)
        open_contact = False  # the last analysed stride's contact: no toe-off, no rest since
        for j in range(1, len(starts) + 1):
            # The still phase before this motion: a rest teaches the gyroscope bias (the
            # device sums from the sample that confirmed it, at most rest_max_samples),
            # and ends the stance of an open contact.
            if ends[j - 1] - starts[j - 1] + 1 >= rest:
                if open_contact:
                    rested.add(len(strides) - 1)
                    open_contact = False
                first = int(starts[j - 1]) + n_window - 1
                count = min(int(ends[j - 1]) - first + 1, p.rest_max_samples)
                sums = counts[first : first + count, 3:].sum(axis=0)
                rest_sums = (int(sums[0]), int(sums[1]), int(sums[2]), count)
            if j == len(starts):
                break
            m0 = int(ends[j - 1]) + 1
            still = int(starts[j])
            confirm = still + n_window - 1
            if still + n_report - 1 <= ends[j]:
                report_at = last = still + n_report - 1
            elif ends[j] + 1 < n:
                report_at, last = int(ends[j]) + 1, int(ends[j])
            else:
                continue  # the recording stops before the device would report it
            gyro = counts[m0 - 1 : confirm + 1, 3:]  # the motion and the sample before it
            pitch = (gyro[:, 0] * axis[0] + gyro[:, 1] * axis[1] + gyro[:, 2] * axis[2]) >> 12
            ev = events.detect(pitch, m0, confirm, still, rate, pitch_start=m0 - 1).events_
            if (
                confirm - m0 >= p.ring_capacity_slots << shift
                or ev.peak_dps < p.swing_threshold_dps
                or ev.swing_area < swing_area
                or (report_at >> shift) - ((m0 - search) >> shift) >= p.ring_capacity_slots
            ):
                continue  # no swing, or the ring no longer holds the stride
            # Slots wholly inside the still phase before (at most zupt_search_ms of it)
            # and the one after; the stride runs between their calmest slots.
            a_hi = (m0 >> shift) - 1
            a_lo = a_hi
            lowest = (m0 - search) >> shift
            while a_lo - 1 >= lowest and slot_quiet[a_lo - 1]:
                a_lo -= 1
            b_lo = (still + (1 << shift) - 1) >> shift
            b_hi = ((last + 1) >> shift) - 1
            z0 = a_lo + int(np.argmin(slot_l1[a_lo : a_hi + 1]))
            z1 = b_lo + int(np.argmin(slot_l1[b_lo : b_hi + 1]))
            g0 = gravity_mean_mg(slots, max(a_lo, z0 - half), min(a_hi, z0 + half))
            g1 = gravity_mean_mg(slots, max(b_lo, z1 - half), min(b_hi, z1 + half))
            traj = StrideTrajectory(self.arithmetic, self.dtype).estimate(slots, z0, z1, g0, rest_sums, dt)
            fpa = FootProgressionAngle(self.stride_parameters, yaw_offset_deg=self.yaw_offset_deg).estimate(
                traj.displacement_m_, traj.heading_rad_, data.side
            )
            speed = math.nan
            if previous_ic >= 0 and 0 < ev.ic_index - previous_ic <= max_stride:
                speed = fpa.stride_length_m_ / ((ev.ic_index - previous_ic) / rate)
            previous_ic = ev.ic_index
            open_contact = True
            axis = pitch_axis_q12(g1) or axis
            strides.append(
                _Stride(
                    to_index=ev.to_index,
                    ic_index=ev.ic_index,
                    end_index=last,
                    start_zupt=z0 << shift,
                    end_zupt=z1 << shift,
                    fpa_deg=fpa.fpa_deg_,
                    fpa_out_deg=fpa.fpa_out_deg_,
                    length_m=fpa.stride_length_m_,
                    speed_ms=speed,
                    direction=fpa.direction_,
                    heading_deg=math.degrees(traj.heading_rad_),
                    swing_deg=ev.swing_deg,
                )
            )
        self._set_results(strides, rested, rate_chz)
        return self

    def _set_results(self, strides: list[_Stride], rested: set[int], rate_chz: int) -> None:
        self.to_index_ = np.array([s.to_index for s in strides], dtype=np.int64)
        self.ic_index_ = np.array([s.ic_index for s in strides], dtype=np.int64)
        self.stride_end_index_ = np.array([s.end_index for s in strides], dtype=np.int64)
        self.start_index_ = np.array([s.start_zupt for s in strides], dtype=np.int64)
        self.end_index_ = np.array([s.end_zupt for s in strides], dtype=np.int64)
        self.fpa_deg_ = np.array([s.fpa_deg for s in strides], dtype=np.float64)
        self.fpa_out_deg_ = np.array([s.fpa_out_deg for s in strides], dtype=np.float64)
        self.stride_length_m_ = np.array([s.length_m for s in strides], dtype=np.float64)
        self.speed_ms_ = np.array([s.speed_ms for s in strides], dtype=np.float64)
        self.direction_ = np.array([s.direction for s in strides], dtype=object)
        self.heading_change_deg_ = np.array([s.heading_deg for s in strides], dtype=np.float64)
        self.swing_deg_ = np.array([s.swing_deg for s in strides], dtype=np.float64)
        # Stances as GaitCore emits them from the IMU alone: the initial contact from one
        # stride, the toe-off from the next; the stride that ended inside the stance gives
        # it its angle, length and direction. GaitCore drops stances shorter than the
        # pressure contact's minimum for IMU contacts too. A stance open at one end has
        # -1 there: the stream's first toe-off, and a stance the foot came to rest in
        # (its contact at the rest, its toe-off when the next stride starts).
        min_stance = samples_for_ms(PressureContactParameters().min_stance_ms, rate_chz)
        steps: list[ImuStep] = []
        for j, after in enumerate(strides):
            if j == 0 or j - 1 in rested:
                steps.append(ImuStep(-1, after.to_index, math.nan, "unknown", math.nan, math.nan))
            elif after.to_index - strides[j - 1].ic_index >= min_stance:
                steps.append(_step(strides[j - 1], after.to_index))
            if j in rested:
                steps.append(_step(after, -1))
        self.steps_ = steps
