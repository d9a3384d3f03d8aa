"""Haptic cue settings in the user's terms: names and units over SETTINGS v2, readable validation.

The device decides on its own, per step (``firmware/insolefw/cue.py``; its host twin
is :mod:`insole.gait.cue`); the host only writes the settings. :func:`apply_cue_options`
turns user-level options (degrees, pattern names, schedule words) into a
:class:`~insole.protocol.Settings` and refuses bad values with a message that names the
option, its unit and its range; :func:`describe` says what the settings do.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from insole.errors import DeviceError, UserError
from insole.protocol import (
    CUE_PATTERN_WEIGHTS,
    SETTINGS_RANGES,
    CueMode,
    CuePattern,
    CueSchedule,
    ErrorCode,
    Settings,
)

if TYPE_CHECKING:  # a link only passes through: the settings model does not depend on links
    from insole.link import InsoleLink

MODE_NAMES: dict[str, int] = {"off": CueMode.OFF, "band": CueMode.FOOT_ANGLE, "metronome": CueMode.METRONOME}
PATTERN_NAMES: dict[str, int] = {
    "long": CuePattern.LONG,
    "short-short": CuePattern.SHORT_SHORT,
    "triple": CuePattern.TRIPLE,
    "long-short": CuePattern.LONG_SHORT,
}
SCHEDULE_NAMES: dict[str, int] = {
    "every-step": CueSchedule.EVERY_STEP,
    "every-kth": CueSchedule.EVERY_KTH,
    "probability": CueSchedule.PROBABILITY,
}

# How each SETTINGS field is shown and named to a user: (option, unit, scale to the
# field's integer); degrees are 0.01° on the wire.
FIELD_OPTIONS: dict[str, tuple[str, str, float]] = {
    "cue_mode": ("--mode", "", 1),
    "cue_duty_pct": ("--duty", "%", 1),
    "fpa_target_cdeg": ("--band (target)", "°", 100),
    "fpa_half_width_cdeg": ("--band (half-width)", "°", 100),
    "toe_in_pattern": ("--toe-in-pattern", "", 1),
    "toe_out_pattern": ("--toe-out-pattern", "", 1),
    "cue_duration_ms": ("--duration-ms", " ms", 1),
    "cue_ms_per_deg": ("--scale-ms-per-deg", " ms/°", 1),
    "cue_max_ms": ("--max-ms", " ms", 1),
    "schedule": ("--schedule", "", 1),
    "fade_every": ("--every", " steps", 1),
    "fade_probability_pct": ("--probability", "%", 1),
    "metronome_pattern": ("--metronome-pattern", "", 1),
    "block_on_steps": ("--block (cued steps)", " steps", 1),
    "block_off_steps": ("--block (steps without cues)", " steps", 1),
    "seed": ("--seed", "", 1),
    "metronome_spm": ("--spm", " steps/min", 1),
    "metronome_pulse_ms": ("--pulse-ms", " ms", 1),
    "imu_yaw_cdeg": ("--mount-yaw", "°", 100),
}


class CueSettingsError(UserError):
    """A cue option the device would refuse; the message says which and why."""


# --------------------------------------------------------------------------- parsing


def parse_band(text: str) -> tuple[float, float]:
    """``"-10:2"`` → (target −10°, half-width 2°)."""
    target, sep, half = text.partition(":")
    try:
        if not sep:
            raise ValueError
        target_deg, half_width_deg = float(target), float(half)
    except ValueError:
        raise CueSettingsError(
            f"--band {text!r}: expected TARGET:HALF_WIDTH in degrees, e.g. -10:2 (target -10°, ±2°)"
        ) from None
    if not (math.isfinite(target_deg) and math.isfinite(half_width_deg)):
        raise CueSettingsError(f"--band {text!r}: the angles must be finite numbers")
    return target_deg, half_width_deg


def parse_block(text: str) -> tuple[int, int]:
    """``"40"`` → 40 steps with cues, then 40 without; ``"40:20"`` → 40 with, 20 without; ``"off"`` → no blocks."""
    if text.strip().lower() in ("off", "0"):
        return 1, 0
    on, sep, off = text.partition(":")
    try:
        on_steps = int(on)
        off_steps = int(off) if sep else on_steps
    except ValueError:
        raise CueSettingsError(
            f"--block {text!r}: expected N (N steps with cues, then N without) or N:M, or off"
        ) from None
    return on_steps, off_steps


def parse_pattern(option: str, text: str) -> int:
    """A pattern by name (long, short-short, triple, long-short) or id 1..4."""
    key = text.strip().lower()
    if key in PATTERN_NAMES:
        return PATTERN_NAMES[key]
    if key.isdigit() and int(key) in CUE_PATTERN_WEIGHTS:
        return int(key)
    names = ", ".join(f"{name} ({pid})" for name, pid in PATTERN_NAMES.items())
    raise CueSettingsError(f"{option} {text!r}: no such pattern; choose one of {names}")


def _choice(option: str, text: str, names: dict[str, int]) -> int:
    key = text.strip().lower()
    if key not in names:
        raise CueSettingsError(f"{option} {text!r}: expected one of {', '.join(names)}")
    return names[key]


# --------------------------------------------------------------------------- validation


def _shown(name: str, value: int) -> str:
    _option, unit, scale = FIELD_OPTIONS.get(name, (name, "", 1))
    return f"{value / scale:g}{unit}"


def check_settings(settings: Settings) -> Settings:
    """The settings, if the device would accept them; else CueSettingsError naming the option."""
    bad = settings.first_bad_field()
    if bad is None:
        return settings
    name, offset = bad
    value = getattr(settings, name)
    option, unit, scale = FIELD_OPTIONS.get(name, (name, "", 1))
    low, high = SETTINGS_RANGES[name][1:]
    if name == "cue_max_ms" and low <= value <= high:
        raise CueSettingsError(
            f"--max-ms {value} ms is below --duration-ms {settings.cue_duration_ms} ms; "
            "the cap must be at least the base duration"
        )
    if name in ("toe_in_pattern", "toe_out_pattern", "metronome_pattern"):
        raise CueSettingsError(f"{option} {value}: no such pattern (1..{len(CUE_PATTERN_WEIGHTS)})")
    raise CueSettingsError(
        f"{option} {_shown(name, value)} is outside {low / scale:g}..{high / scale:g}{unit} (SETTINGS offset {offset})"
    )


def _cdeg(option: str, degrees: float) -> int:
    cdeg = round(degrees * 100)
    if not -32767 <= cdeg <= 32767:
        raise CueSettingsError(f"{option} {degrees:g}° is far outside the valid range")
    return cdeg


def apply_cue_options(settings: Settings, **options: Any) -> Settings:
    """New settings from ``settings`` and user-level options (None = leave as is).

    Options: mode ("off" | "band" | "metronome"), band ("T:H" degrees), target_deg,
    half_width_deg, toe_in_pattern, toe_out_pattern, metronome_pattern (names or ids),
    duration_ms, scale_ms_per_deg, max_ms, duty_pct, schedule ("every-step" |
    "every-kth" | "probability"), every (k; implies every-kth), probability_pct
    (implies probability), block ("N", "N:M" or "off"), seed, spm, pulse_ms,
    mount_yaw_deg (the IMU's mounting yaw from a calibration, docs/gait-imu.md).
    Raises CueSettingsError for a value the device would refuse.
    """
    changes: dict[str, int] = {}
    given = {k: v for k, v in options.items() if v is not None}
    unknown = set(given) - {
        "mode", "band", "target_deg", "half_width_deg", "toe_in_pattern", "toe_out_pattern", "metronome_pattern",
        "duration_ms", "scale_ms_per_deg", "max_ms", "duty_pct", "schedule", "every", "probability_pct", "block",
        "seed", "spm", "pulse_ms", "mount_yaw_deg",
    }  # fmt: skip
    if unknown:
        raise TypeError(f"unknown cue options: {sorted(unknown)}")
    if "mode" in given:
        changes["cue_mode"] = _choice("--mode", given["mode"], MODE_NAMES)
    if "band" in given:
        target, half = parse_band(given["band"])
        changes["fpa_target_cdeg"] = _cdeg("--band (target)", target)
        changes["fpa_half_width_cdeg"] = _cdeg("--band (half-width)", half)
    if "target_deg" in given:
        changes["fpa_target_cdeg"] = _cdeg("--band (target)", float(given["target_deg"]))
    if "half_width_deg" in given:
        changes["fpa_half_width_cdeg"] = _cdeg("--band (half-width)", float(given["half_width_deg"]))
    for key, field, option in (
        ("toe_in_pattern", "toe_in_pattern", "--toe-in-pattern"),
        ("toe_out_pattern", "toe_out_pattern", "--toe-out-pattern"),
        ("metronome_pattern", "metronome_pattern", "--metronome-pattern"),
    ):
        if key in given:
            changes[field] = parse_pattern(option, str(given[key]))
    for key, field in (
        ("duration_ms", "cue_duration_ms"),
        ("scale_ms_per_deg", "cue_ms_per_deg"),
        ("max_ms", "cue_max_ms"),
        ("duty_pct", "cue_duty_pct"),
        ("seed", "seed"),
        ("spm", "metronome_spm"),
        ("pulse_ms", "metronome_pulse_ms"),
    ):
        if key in given:
            changes[field] = int(given[key])
    if "schedule" in given:
        changes["schedule"] = _choice("--schedule", given["schedule"], SCHEDULE_NAMES)
    if "every" in given and "probability_pct" in given:
        raise CueSettingsError("--every and --probability are two different schedules; give one")
    if "every" in given:
        changes["fade_every"] = int(given["every"])
        changes["schedule"] = CueSchedule.EVERY_KTH
    if "probability_pct" in given:
        changes["fade_probability_pct"] = int(given["probability_pct"])
        changes["schedule"] = CueSchedule.PROBABILITY
    if "block" in given:
        changes["block_on_steps"], changes["block_off_steps"] = parse_block(str(given["block"]))
    if "mount_yaw_deg" in given:
        changes["imu_yaw_cdeg"] = _cdeg("--mount-yaw", float(given["mount_yaw_deg"]))
    return check_settings(replace(settings, **changes))


# --------------------------------------------------------------------------- description


def _name(names: dict[str, int], value: int) -> str:
    for name, code in names.items():
        if code == value:
            return name
    return str(value)


def describe(settings: Settings) -> list[str]:
    """The cue settings as a few readable lines (``insole cue show``)."""
    s = settings

    def pattern(pid: int) -> str:
        return f"{_name(PATTERN_NAMES, pid)} ({pid})"

    if s.cue_ms_per_deg:
        duration = f"{s.cue_duration_ms} ms + {s.cue_ms_per_deg} ms per degree beyond the band, at most {s.cue_max_ms} ms"
    else:
        duration = f"{s.cue_duration_ms} ms (fixed)"
    if s.schedule == CueSchedule.EVERY_KTH:
        schedule = f"1 of every {s.fade_every} out-of-band steps (counting from the stream's start)"
    elif s.schedule == CueSchedule.PROBABILITY:
        schedule = f"out-of-band steps with probability {s.fade_probability_pct} % (seed {s.seed})"
    else:
        schedule = "every out-of-band step"
    if s.block_off_steps:
        schedule += f"; blocks of {s.block_on_steps} steps with cues, then {s.block_off_steps} without"
    side = {0: "left", 1: "right"}.get(s.side if s.side is not None else -1, "the board's own")
    return [
        f"mode:        {_name(MODE_NAMES, s.cue_mode)}",
        f"band:        {s.fpa_target_cdeg / 100:g}° ± {s.fpa_half_width_cdeg / 100:g}° (foot progression angle, + toe-out)",
        f"toe-in cue:  {pattern(s.toe_in_pattern)}, when the FPA is above the band",
        f"toe-out cue: {pattern(s.toe_out_pattern)}, when the FPA is below the band",
        f"duration:    {duration}",
        f"intensity:   {s.cue_duty_pct} % PWM duty",
        f"schedule:    {schedule}",
        f"metronome:   {s.metronome_spm} steps/min, {pattern(s.metronome_pattern)}, {s.metronome_pulse_ms} ms",
        f"side:        {side}",
        f"IMU yaw:     {s.imu_yaw_cdeg / 100:+g}° mounting yaw taken off the foot angle (calibration)",
    ]


def field_at(offset: int) -> str:
    """The SETTINGS field at a payload offset (a device's BAD_VALUE detail)."""
    for name, (field_offset, _low, _high) in SETTINGS_RANGES.items():
        if field_offset == offset:
            return name
    return f"offset {offset}"


def store_settings(link: InsoleLink, wanted: Settings, insole: str = "the insole") -> Settings:
    """Writes ``wanted`` to the insole and reads it back; a refusal or a different read-back
    is a one-line :class:`UserError` naming ``insole`` (its settings then unchanged)."""
    try:
        link.set_settings(wanted)
    except DeviceError as exc:
        if exc.code == ErrorCode.BAD_VALUE:
            raise UserError(f"{insole} refused {field_at(exc.detail)} (BAD_VALUE); its settings are unchanged") from exc
        if exc.code == ErrorCode.BAD_STATE and exc.detail == 0xFF:
            raise UserError(f"{insole} applied the settings but could not persist them (flash write failed)") from exc
        raise UserError(f"{insole} refused the settings: {exc}") from exc
    stored = link.get_settings()
    if stored != wanted:
        raise UserError(f"{insole} reports other settings than were written; check its firmware version")
    return stored
