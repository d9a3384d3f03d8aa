"""The dashboard's cue-settings form: its fields, their values from an insole's settings,
and the host's settings validation (:mod:`insole.settings`) with each error placed next
to the field it concerns.

Field names are :func:`insole.settings.apply_cue_options`' option names, so the form,
``insole cue set`` and the insole refuse the same values with the same words.
"""

from __future__ import annotations

from dataclasses import replace

from insole.protocol import SETTINGS_RANGES, CueSchedule, Settings
from insole.settings import MODE_NAMES, PATTERN_NAMES, SCHEDULE_NAMES, CueSettingsError, apply_cue_options

INT_FIELDS = ("duration_ms", "scale_ms_per_deg", "max_ms", "duty_pct", "every", "probability_pct", "spm", "pulse_ms")
FLOAT_FIELDS = ("target_deg", "half_width_deg")
TEXT_FIELDS = ("mode", "toe_in_pattern", "toe_out_pattern", "schedule", "block")
FIELDS = TEXT_FIELDS + FLOAT_FIELDS + INT_FIELDS
# The option each field stands for in insole.settings' messages (they start with it).
FIELD_OPTIONS = {
    "mode": "--mode", "target_deg": "--band (target)", "half_width_deg": "--band (half-width)",
    "toe_in_pattern": "--toe-in-pattern", "toe_out_pattern": "--toe-out-pattern", "duration_ms": "--duration-ms",
    "scale_ms_per_deg": "--scale-ms-per-deg", "max_ms": "--max-ms", "duty_pct": "--duty", "schedule": "--schedule",
    "every": "--every", "probability_pct": "--probability", "block": "--block", "spm": "--spm",
    "pulse_ms": "--pulse-ms",
}  # fmt: skip
FORM_ERROR = "form"  # errors that belong to no single field


def _name(names: dict[str, int], value: int) -> str:
    return next((name for name, code in names.items() if code == value), str(value))


def form_values(settings: Settings) -> dict[str, str]:
    """The form's fields filled from an insole's settings."""
    s = settings
    return {
        "mode": _name(MODE_NAMES, s.cue_mode),
        "target_deg": f"{s.fpa_target_cdeg / 100:g}",
        "half_width_deg": f"{s.fpa_half_width_cdeg / 100:g}",
        "toe_in_pattern": _name(PATTERN_NAMES, s.toe_in_pattern),
        "toe_out_pattern": _name(PATTERN_NAMES, s.toe_out_pattern),
        "duration_ms": str(s.cue_duration_ms),
        "scale_ms_per_deg": str(s.cue_ms_per_deg),
        "max_ms": str(s.cue_max_ms),
        "duty_pct": str(s.cue_duty_pct),
        "schedule": _name(SCHEDULE_NAMES, s.schedule),
        "every": str(s.fade_every),
        "probability_pct": str(s.fade_probability_pct),
        "block": f"{s.block_on_steps}:{s.block_off_steps}" if s.block_off_steps else "off",
        "spm": str(s.metronome_spm),
        "pulse_ms": str(s.metronome_pulse_ms),
    }


def _parse(form: dict[str, object]) -> tuple[dict[str, object], dict[str, str]]:
    options: dict[str, object] = {}
    errors: dict[str, str] = {}
    for key, raw in form.items():
        if key not in FIELDS:
            errors[FORM_ERROR] = f"unknown field {key!r}"
            continue
        text = str(raw).strip()
        if not text:
            errors[key] = "give a value"
        elif key in INT_FIELDS:
            try:
                options[key] = int(text)
            except ValueError:
                errors[key] = f"{text!r} is not a whole number"
        elif key in FLOAT_FIELDS:
            try:
                options[key] = float(text)
            except ValueError:
                errors[key] = f"{text!r} is not a number"
        else:
            options[key] = text
    # The schedule decides which of its two parameters applies (each implies its schedule).
    schedule = options.get("schedule")
    if schedule != "every-kth":
        options.pop("every", None)
    if schedule != "probability":
        options.pop("probability_pct", None)
    return options, errors


def _field_of(message: str) -> str:
    for key, option in sorted(FIELD_OPTIONS.items(), key=lambda item: -len(item[1])):
        if message.startswith(option):
            return key
    return FORM_ERROR


def validate_form(current: Settings, form: dict[str, object]) -> tuple[Settings | None, dict[str, str]]:
    """The insole's new settings from the form, or None and the errors by field.

    Each field is checked alone against its range (on settings whose cap cannot clash
    with the base duration), then all together (the cap against the base duration)."""
    options, errors = _parse(form)
    if not errors:
        try:
            return apply_cue_options(current, **options), {}
        except CueSettingsError as combined:
            together = str(combined)
    neutral = replace(current, cue_duration_ms=SETTINGS_RANGES["cue_duration_ms"][1],
                      cue_max_ms=SETTINGS_RANGES["cue_max_ms"][2], schedule=CueSchedule.EVERY_STEP)
    for key, value in options.items():
        try:
            apply_cue_options(neutral, **{key: value})
        except CueSettingsError as alone:
            errors[key] = str(alone)
    if not errors:  # each value fits alone: they clash together
        errors[_field_of(together)] = together
    return None, errors
