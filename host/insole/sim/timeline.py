"""From a session plan to exact per-foot timelines: footprints, contacts, curves, ground truth.

Gait timing (per walking step of duration T = 60 / cadence): swing lasts 0.8 T, stance
1.2 T, so each foot is 60 % of its stride on the ground and each double support lasts
0.2 T. In forward stance the foot lands on the heel dorsiflexed, rolls flat about the
heel, stays still (foot flat), then rolls about the metatarsal heads until toe-off. In
backward stance the order is mirrored in time: the forefoot lands first plantarflexed,
the heel lowers, and the foot finally turns toes-up about the heel before the heel
leaves the ground. A bout starts with a weight shift onto the stance foot and a half
step, and ends with a closing step that puts the feet side by side again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from insole.model import HeelRaiseRow, Side, StepRow
from insole.sim.kinematics import FootTrajectory, PositionPhases
from insole.sim.piecewise import Knot, QuinticCurve
from insole.sim.plan import HeelRaises, SessionPlan, Stand, Subject, Walk

SIDES: tuple[Side, Side] = ("left", "right")
STANDING_COP_FRACTION = 0.42  # quiet standing: centre of pressure at 42 % of the foot length
SWING_FRACTION = 0.8  # swing duration as a fraction of the step time
_FAR_PAST_S = -1.0e9


def wrap_rad(angle: float) -> float:
    """Angle wrapped to [-pi, pi)."""
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


@dataclass(frozen=True)
class StepTruth:
    """Exact ground truth of one stance phase during walking (parallel to the STEPS rows)."""

    side: Side
    ic_s: float
    to_s: float
    fpa_deg: float
    direction: Literal["forward", "backward"]
    # Heel displacement since this foot's previous footprint (half a stride for a bout's first step).
    stride_length_m: float
    stride_time_s: float  # since this foot's previous initial contact in the bout; NaN for the bout's first two steps
    speed_ms: float  # stride_length_m / stride_time_s; NaN where stride_time_s is
    facing_heading_deg: float  # walker's facing heading of this stance, from world +x, counter-clockwise
    stride_heading_deg: float  # direction of the heel's displacement into this footprint
    heel_xy_m: tuple[float, float]  # footprint (heel centre) in the world frame
    foot_flat_s: tuple[float, float]  # the foot lies flat and still in between
    segment_index: int

    def row(self) -> StepRow:
        return StepRow(side=self.side, ic_s=self.ic_s, to_s=self.to_s, fpa_deg=self.fpa_deg, direction=self.direction)


@dataclass(frozen=True)
class ContactTruth:
    """Every ground contact of a foot; ``None`` where it began before or outlasts the recording."""

    side: Side
    ic_s: float | None
    to_s: float | None
    heel_xy_m: tuple[float, float]
    yaw_deg: float


@dataclass(frozen=True)
class RaiseTruth:
    side: Side
    start_s: float  # heel leaves the ground
    end_s: float  # heel back on the ground
    hold_s: float  # time held at the top (the plan's hold)
    hold_start_s: float
    rep: int  # 1-based within the set
    set: int  # 1-based within the session
    raise_deg: float

    def row(self) -> HeelRaiseRow:
        return HeelRaiseRow(side=self.side, start_s=self.start_s, end_s=self.end_s, hold_s=self.hold_s)


@dataclass(frozen=True)
class _Rocker:
    pivot: Literal["heel", "mth"]
    pitch_deg: float  # at initial contact (entry) or toe-off (exit)
    stance_fraction: float
    cop_fractions: tuple[float, ...]  # centre of pressure along the foot during the rocker


@dataclass
class _Phase:
    start_s: float
    swing: bool
    end_s: float
    clearance_m: float
    a_world: np.ndarray
    a_foot: np.ndarray
    b_world: np.ndarray
    b_foot: np.ndarray


@dataclass
class _OpenContact:
    ic_s: float | None
    bout: int  # bout number of the initial contact, -1 outside walking
    heel_xy: np.ndarray
    yaw_rad: float
    entry_end_s: float
    step: StepTruth | None = None  # walking steps: the truth, completed at toe-off


@dataclass
class _Foot:
    side: Side
    sign: float  # +1 left, -1 right: mirrors lateral offsets and yaw
    contact: _OpenContact
    yaw_knots: list[Knot] = field(default_factory=list)
    pitch_knots: list[Knot] = field(default_factory=list)
    roll_knots: list[Knot] = field(default_factory=list)
    phases: list[_Phase] = field(default_factory=list)
    cop_knots: list[tuple[float, float]] = field(default_factory=list)


def _append_knot(knots: list[Knot], knot: Knot) -> None:
    if knots and knot.t_s <= knots[-1].t_s + 1e-9:
        last = knots[-1]
        same = abs(knot.t_s - last.t_s) <= 1e-9 and math.isclose(knot.value, last.value, abs_tol=1e-12)
        if same and knot.slope == last.slope and knot.curvature == last.curvature:
            return
        raise AssertionError(f"knot at {knot.t_s} s does not follow the knot at {last.t_s} s")
    knots.append(knot)


def _append_point(points: list[tuple[float, float]], t_s: float, value: float) -> None:
    if points and t_s <= points[-1][0] + 1e-9:
        if abs(t_s - points[-1][0]) <= 1e-9:
            points[-1] = (points[-1][0], value)
            return
        raise AssertionError(f"point at {t_s} s does not follow the point at {points[-1][0]} s")
    points.append((t_s, value))


@dataclass
class Timeline:
    duration_s: float
    trajectories: dict[Side, FootTrajectory]
    load_share_left: QuinticCurve  # left foot's share of the vertical load while both feet are down
    walking_force_factor: QuinticCurve  # total vertical force / body weight from walking dynamics
    raise_windows_s: list[tuple[float, float]]
    cop_knots: dict[Side, tuple[np.ndarray, np.ndarray]]  # time, CoP position as a fraction of foot length
    steps: list[StepTruth]
    contacts: list[ContactTruth]
    raises: list[RaiseTruth]


class TimelineBuilder:
    def __init__(self, subject: Subject, foot_length_m: float, rng: np.random.Generator) -> None:
        self.subject = subject
        self.foot_length_m = foot_length_m
        self.rng = rng
        self.mth_foot = np.array([subject.mth_fraction * foot_length_m, 0.0, 0.0])
        self.t_s = 0.0
        self.heading_rad = 0.0
        self.centre_xy = np.zeros(2)
        self.bout_count = 0
        self.first_foot: Side = "left"
        self.share_knots: list[Knot] = [Knot(0.0, 0.5)]
        self.force_knots: list[Knot] = [Knot(0.0, 1.0)]
        self.raise_windows: list[tuple[float, float]] = []
        self.steps: list[StepTruth] = []
        self.contacts: list[ContactTruth] = []
        self.raises: list[RaiseTruth] = []
        self.set_count = 0
        self.feet: dict[Side, _Foot] = {}
        sides_and_signs: tuple[tuple[Side, float], ...] = (("left", 1.0), ("right", -1.0))
        for side, sign in sides_and_signs:
            heel = self.centre_xy + sign * subject.step_width_m / 2.0 * self._left_normal(0.0)
            yaw = sign * math.radians(subject.standing_fpa_deg)
            foot = _Foot(side=side, sign=sign, contact=_OpenContact(None, -1, heel, yaw, 0.0))
            foot.yaw_knots.append(Knot(0.0, yaw))
            foot.pitch_knots.append(Knot(0.0, 0.0))
            foot.roll_knots.append(Knot(0.0, 0.0))
            foot.phases.append(self._stance_phase(_FAR_PAST_S, heel, yaw, "heel"))
            foot.cop_knots.append((0.0, STANDING_COP_FRACTION))
            self.feet[side] = foot
        s = subject
        self.rockers: dict[str, tuple[_Rocker, _Rocker]] = {
            "forward": (
                _Rocker("heel", -s.heel_strike_pitch_deg, 0.20, (0.04, 0.12)),
                _Rocker("mth", s.toe_off_pitch_deg, 0.42, (0.66, 0.71, 0.77, 0.84)),
            ),
            "backward": (
                _Rocker("mth", s.toe_strike_pitch_deg, 0.18, (0.84, 0.70)),
                _Rocker("heel", -s.backward_heel_off_pitch_deg, 0.25, (0.14, 0.10, 0.07, 0.04)),
            ),
        }

    # --- geometry helpers -------------------------------------------------------------

    @staticmethod
    def _forward(heading: float) -> np.ndarray:
        return np.array([math.cos(heading), math.sin(heading)])

    @staticmethod
    def _left_normal(heading: float) -> np.ndarray:
        return np.array([-math.sin(heading), math.cos(heading)])

    def _pivot_foot(self, pivot: str) -> np.ndarray:
        return self.mth_foot.copy() if pivot == "mth" else np.zeros(3)

    def _pivot_world(self, heel_xy: np.ndarray, yaw: float, pivot: str) -> np.ndarray:
        # The foot is flat when the pivot is placed: pivot = heel + Rz(yaw) r.
        r = self._pivot_foot(pivot)
        return np.array([heel_xy[0] + math.cos(yaw) * r[0], heel_xy[1] + math.sin(yaw) * r[0], 0.0])

    def _stance_phase(self, start_s: float, heel_xy: np.ndarray, yaw: float, pivot: str) -> _Phase:
        world, foot = self._pivot_world(heel_xy, yaw, pivot), self._pivot_foot(pivot)
        return _Phase(start_s, False, start_s, 0.0, world, foot, world, foot)

    @staticmethod
    def _add_phase(foot: _Foot, phase: _Phase) -> None:
        if phase.start_s <= foot.phases[-1].start_s + 1e-9:
            raise AssertionError(f"{foot.side} phase at {phase.start_s} s does not follow {foot.phases[-1].start_s} s")
        foot.phases.append(phase)

    def _pin_standing(self, t_s: float) -> None:
        """Both feet flat and loaded equally at t_s (the curves hold from their last knots)."""
        _append_knot(self.share_knots, Knot(t_s, 0.5))
        _append_knot(self.force_knots, Knot(t_s, 1.0))
        for foot in self.feet.values():
            _append_point(foot.cop_knots, t_s, STANDING_COP_FRACTION)

    # --- segments ---------------------------------------------------------------------

    def add_plan(self, plan: SessionPlan) -> None:
        segments = list(enumerate(plan.segments))
        i = 0
        while i < len(segments):
            index, segment = segments[i]
            if isinstance(segment, Walk):
                bout = [(index, segment)]
                while i + 1 < len(segments):
                    nxt = segments[i + 1][1]
                    if not (isinstance(nxt, Walk) and nxt.direction == segment.direction):
                        break
                    i += 1
                    bout.append((segments[i][0], nxt))
                self._walk_bout(bout)
            elif isinstance(segment, Stand):
                self._stand(segment)
            else:
                self._heel_raises(segment)
            i += 1

    def _stand(self, stand: Stand) -> None:
        t0, t1 = self.t_s, self.t_s + stand.duration_s
        self._pin_standing(t0)
        if stand.weight_shift and self.subject.weight_shift_share > 0.0:
            cycles = max(1, round(stand.duration_s / stand.weight_shift_period_s))
            omega = 2.0 * math.pi * cycles / stand.duration_s
            a = self.subject.weight_shift_share
            # Knots at quarter periods with the sine's exact derivatives: the quintic pieces
            # follow the sine closely and the share is back at 0.5 at the end.
            for k in range(1, 4 * cycles):
                t = t0 + k * stand.duration_s / (4 * cycles)
                phase = omega * (t - t0)
                _append_knot(
                    self.share_knots,
                    Knot(t, 0.5 + a * math.sin(phase), a * omega * math.cos(phase), -a * omega**2 * math.sin(phase)),
                )
        # Postural sway: the centre of pressure wanders a little along the feet.
        sway_times = np.arange(t0 + 0.8, t1 - 0.4, 0.8)
        sway = STANDING_COP_FRACTION + np.clip(self.rng.normal(0.0, 0.015, len(sway_times)), -0.04, 0.04)
        for t, x in zip(sway_times, sway, strict=True):
            for foot in self.feet.values():
                _append_point(foot.cop_knots, float(t), float(x))
        self._pin_standing(t1)
        self.t_s = t1

    def _heel_raises(self, exercise: HeelRaises) -> None:
        t = self.t_s
        self._pin_standing(t)
        lean_s = min(0.3, exercise.rest_s / 2.0)  # load moves to the forefoot before the heel lifts
        t += lean_s
        theta = math.radians(exercise.raise_deg)
        for set_number in range(exercise.sets):
            self.set_count += 1
            for rep in range(exercise.reps):
                start = t
                top = start + exercise.rise_s
                top_end = top + exercise.hold_s
                end = top_end + exercise.lower_s
                for foot in self.feet.values():
                    c = foot.contact
                    _append_knot(foot.pitch_knots, Knot(start, 0.0))
                    _append_knot(foot.pitch_knots, Knot(top, theta))
                    if exercise.hold_s > 0.0:
                        _append_knot(foot.pitch_knots, Knot(top_end, theta))
                    _append_knot(foot.pitch_knots, Knot(end, 0.0))
                    self._add_phase(foot, self._stance_phase(start, c.heel_xy, c.yaw_rad, "mth"))
                    self._add_phase(foot, self._stance_phase(end, c.heel_xy, c.yaw_rad, "heel"))
                    _append_point(foot.cop_knots, start - lean_s, STANDING_COP_FRACTION)
                    _append_point(foot.cop_knots, start, self.subject.mth_fraction)
                    _append_point(foot.cop_knots, end, self.subject.mth_fraction)
                    _append_point(foot.cop_knots, end + lean_s, STANDING_COP_FRACTION)
                    self.raises.append(
                        RaiseTruth(
                            foot.side, start, end, exercise.hold_s, top, rep + 1, self.set_count, exercise.raise_deg
                        )
                    )
                self.raise_windows.append((start, end))
                last_rep = rep == exercise.reps - 1
                last_set = set_number == exercise.sets - 1
                if not last_rep:
                    t = end + exercise.rest_s
                elif not last_set:
                    t = end + max(exercise.set_rest_s, exercise.rest_s)
                else:
                    t = end + lean_s
        self._pin_standing(t)
        self.t_s = t

    def _walk_bout(self, walks: list[tuple[int, Walk]]) -> None:
        s = self.subject
        rng = self.rng
        direction = walks[0][1].direction
        moving = 1.0 if direction == "forward" else -1.0
        entry, exit_ = self.rockers[direction]
        self.bout_count += 1
        bout = self.bout_count

        def jitter(sd: float) -> float:
            return sd * float(np.clip(rng.normal(), -2.5, 2.5))

        # Footfalls: who steps, how long the step takes, how far and where the body goes.
        sides: list[Side] = []
        step_time: list[float] = []
        advance: list[float] = []
        turn: list[float] = []
        fpa: list[float] = []
        segment_of: list[int] = []
        other: dict[Side, Side] = {"left": "right", "right": "left"}
        side: Side = self.first_foot
        for index, walk in walks:
            n = walk.footfalls()
            for _ in range(n):
                nominal = 60.0 / walk.cadence_spm
                sides.append(side)
                step_time.append(nominal * (1.0 + jitter(walk.step_time_cv)))
                advance.append(max(0.0, walk.stride_length_m / 2.0 * (1.0 + jitter(walk.stride_length_cv))))
                turn.append(math.radians(walk.turn_deg) / n)
                fpa.append(walk.fpa_pair_deg[0 if side == "left" else 1] + jitter(walk.fpa_sd_deg))
                segment_of.append(index)
                side = other[side]
        last_index, last_walk = walks[-1]
        sides.append(side)  # closing step: feet side by side
        step_time.append(60.0 / last_walk.cadence_spm)
        advance.append(0.0)
        turn.append(0.0)
        fpa.append(last_walk.fpa_pair_deg[0 if side == "left" else 1] + jitter(last_walk.fpa_sd_deg))
        segment_of.append(last_index)
        n = len(sides)
        self.first_foot = other[self.first_foot]

        # Timing: leave-ground (L) and initial-contact (IC) times of every footfall.
        swing = [SWING_FRACTION * T for T in step_time]
        first_exit_s = exit_.stance_fraction * 1.2 * step_time[0]
        t_b = self.t_s
        leave = [0.0] * n
        contact = [0.0] * n
        leave[0] = t_b + 0.3 + first_exit_s  # weight shift onto the stance foot first
        contact[0] = leave[0] + swing[0]
        for j in range(1, n):
            contact[j] = contact[j - 1] + step_time[j]
            leave[j] = contact[j] - swing[j]
        stance = [leave[j + 2] - contact[j] if j + 2 < n else 1.2 * step_time[j] for j in range(n)]
        entry_s = [entry.stance_fraction * stance[j] for j in range(n)]
        t_end = contact[-1] + max(0.5, entry_s[-1] + 0.1)

        # Loads: the landing foot takes over the body weight during each double support.
        self._pin_standing(t_b)
        a = s.grf_oscillation
        for j in range(n):
            share = 0.0 if sides[j] == "left" else 1.0
            omega2 = (2.0 * math.pi / step_time[j]) ** 2
            if j >= 1:
                mid = (contact[j - 1] + leave[j]) / 2.0
                _append_knot(self.force_knots, Knot(mid, 1.0 + a, 0.0, -a * omega2))
            _append_knot(self.share_knots, Knot(leave[j], share))
            _append_knot(self.force_knots, Knot((leave[j] + contact[j]) / 2.0, 1.0 - a, 0.0, a * omega2))
            _append_knot(self.share_knots, Knot(contact[j], share))

        # Geometry and foot curves, footfall by footfall.
        heading = self.heading_rad
        centre = self.centre_xy.copy()
        for j in range(n):
            foot = self.feet[sides[j]]
            old = foot.contact
            new_heading = heading + turn[j]
            centre = centre + moving * advance[j] * self._forward(heading + turn[j] / 2.0)
            heading = new_heading
            heel_xy = centre + foot.sign * s.step_width_m / 2.0 * self._left_normal(heading)
            yaw = old.yaw_rad + wrap_rad(heading + foot.sign * math.radians(fpa[j]) - old.yaw_rad)

            # Leave the old footprint: exit rocker, then toe-off (or heel-off, backward).
            to_s = leave[j]
            old_stance = to_s - old.ic_s if old.bout == bout and old.ic_s is not None else 1.2 * step_time[j]
            exit_s = exit_.stance_fraction * old_stance
            exit_start = to_s - exit_s
            if exit_start <= max(old.entry_end_s, foot.pitch_knots[-1].t_s):
                raise AssertionError("exit rocker overlaps the previous event")
            exit_pitch = math.radians(exit_.pitch_deg)
            _append_knot(foot.pitch_knots, Knot(exit_start, 0.0))
            _append_knot(foot.pitch_knots, Knot(to_s, exit_pitch, 1.8 * exit_pitch / exit_s))
            self._add_phase(foot, self._stance_phase(exit_start, old.heel_xy, old.yaw_rad, exit_.pivot))
            cop = exit_.cop_fractions
            for k, x in enumerate(cop):
                _append_point(foot.cop_knots, exit_start + exit_s * k / (len(cop) - 1), x)
            _append_knot(foot.yaw_knots, Knot(to_s, old.yaw_rad))
            self._close_contact(foot, to_s, exit_start)

            # Swing to the new footprint.
            ic_s = contact[j]
            swing_mid = (to_s + ic_s) / 2.0
            _append_knot(foot.roll_knots, Knot(to_s, 0.0))
            _append_knot(foot.roll_knots, Knot(swing_mid, -foot.sign * math.radians(s.swing_roll_deg)))
            _append_knot(foot.roll_knots, Knot(ic_s, 0.0))
            self._add_phase(
                foot,
                _Phase(
                    to_s,
                    True,
                    ic_s,
                    s.swing_clearance_m,
                    self._pivot_world(old.heel_xy, old.yaw_rad, exit_.pivot),
                    self._pivot_foot(exit_.pivot),
                    self._pivot_world(heel_xy, yaw, entry.pivot),
                    self._pivot_foot(entry.pivot),
                ),
            )

            # Land: entry rocker to foot flat.
            entry_pitch = math.radians(entry.pitch_deg)
            entry_end = ic_s + entry_s[j]
            _append_knot(foot.yaw_knots, Knot(ic_s, yaw))
            _append_knot(foot.pitch_knots, Knot(ic_s, entry_pitch, -1.2 * entry_pitch / entry_s[j]))
            _append_knot(foot.pitch_knots, Knot(entry_end, 0.0))
            self._add_phase(foot, self._stance_phase(ic_s, heel_xy, yaw, entry.pivot))
            self._add_phase(foot, self._stance_phase(entry_end, heel_xy, yaw, "heel"))
            for k, x in enumerate(entry.cop_fractions):
                _append_point(foot.cop_knots, ic_s + entry_s[j] * k / (len(entry.cop_fractions) - 1), x)

            previous_ic = old.ic_s if old.bout == bout else None
            displacement = heel_xy - old.heel_xy
            stride_length = float(np.hypot(*displacement))
            stride_time = ic_s - previous_ic if previous_ic is not None else math.nan
            foot.contact = _OpenContact(
                ic_s,
                bout,
                heel_xy,
                yaw,
                entry_end,
                StepTruth(
                    side=foot.side,
                    ic_s=ic_s,
                    to_s=math.nan,
                    fpa_deg=fpa[j],
                    direction=direction,
                    stride_length_m=stride_length,
                    stride_time_s=stride_time,
                    speed_ms=stride_length / stride_time if previous_ic is not None else math.nan,
                    facing_heading_deg=math.degrees(wrap_rad(heading)),
                    stride_heading_deg=math.degrees(math.atan2(displacement[1], displacement[0])),
                    heel_xy_m=(float(heel_xy[0]), float(heel_xy[1])),
                    foot_flat_s=(entry_end, math.nan),
                    segment_index=segment_of[j],
                ),
            )

        self.heading_rad = heading
        self.centre_xy = centre
        self._pin_standing(t_end)
        self.t_s = t_end

    def _close_contact(self, foot: _Foot, to_s: float, flat_end_s: float) -> None:
        c = foot.contact
        self.contacts.append(
            ContactTruth(foot.side, c.ic_s, to_s, (float(c.heel_xy[0]), float(c.heel_xy[1])), math.degrees(c.yaw_rad))
        )
        if c.step is not None:
            self.steps.append(replace(c.step, to_s=to_s, foot_flat_s=(c.entry_end_s, flat_end_s)))

    # --- result -----------------------------------------------------------------------

    def build(self, imu_position_m: np.ndarray) -> Timeline:
        duration = self.t_s
        trajectories: dict[Side, FootTrajectory] = {}
        cop: dict[Side, tuple[np.ndarray, np.ndarray]] = {}
        for side, foot in self.feet.items():
            c = foot.contact
            self.contacts.append(
                ContactTruth(side, c.ic_s, None, (float(c.heel_xy[0]), float(c.heel_xy[1])), math.degrees(c.yaw_rad))
            )
            ph = foot.phases
            phases = PositionPhases(
                start_s=np.array([p.start_s for p in ph]),
                end_s=np.array([p.end_s for p in ph]),
                swing=np.array([p.swing for p in ph]),
                clearance_m=np.array([p.clearance_m for p in ph]),
                pivot_a_world=np.array([p.a_world for p in ph]),
                pivot_a_foot=np.array([p.a_foot for p in ph]),
                pivot_b_world=np.array([p.b_world for p in ph]),
                pivot_b_foot=np.array([p.b_foot for p in ph]),
            )
            trajectories[side] = FootTrajectory(
                side,
                QuinticCurve(foot.yaw_knots),
                QuinticCurve(foot.pitch_knots),
                QuinticCurve(foot.roll_knots),
                phases,
                imu_position_m,
                self.mth_foot,
            )
            times, values = zip(*foot.cop_knots, strict=True)
            cop[side] = (np.array(times), np.array(values))
        self.contacts.sort(key=lambda k: (k.ic_s if k.ic_s is not None else -math.inf, k.side))
        order = sorted(range(len(self.steps)), key=lambda i: (self.steps[i].ic_s, self.steps[i].side))
        return Timeline(
            duration_s=duration,
            trajectories=trajectories,
            load_share_left=QuinticCurve(self.share_knots),
            walking_force_factor=QuinticCurve(self.force_knots),
            raise_windows_s=list(self.raise_windows),
            cop_knots=cop,
            steps=[self.steps[i] for i in order],
            contacts=self.contacts,
            raises=sorted(self.raises, key=lambda r: (r.start_s, r.side)),
        )


def build_timeline(plan: SessionPlan, subject: Subject, foot_length_m: float, rng: np.random.Generator) -> Timeline:
    builder = TimelineBuilder(subject, foot_length_m, rng)
    builder.add_plan(plan)
    return builder.build(np.asarray(subject.imu_position_m, dtype=np.float64))
