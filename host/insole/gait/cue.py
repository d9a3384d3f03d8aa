"""Host twin of firmware/insolefw/cue.py: the device's per-step cue decision.

The same decision in plain Python (:class:`CueEngine`), so that a test or a clinician
can predict which steps the device cues (the probability schedule's PRNG,
:func:`xorshift16`, included), and the motor's switching times of a pulse pattern
(:func:`pattern_edges_ms`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

from insole.protocol import CUE_PATTERN_WEIGHTS, CueOutcome, CueReason, CueSchedule, Settings
from insole.settings import check_settings

SEED_ZERO = 0xACE1  # the device starts its PRNG here when the seed is 0


def xorshift16(x: int) -> int:
    """The device's schedule PRNG step (xorshift 7/9/8 on 16 bits)."""
    x ^= (x << 7) & 0xFFFF
    x ^= x >> 9
    return x ^ ((x << 8) & 0xFFFF)


def pattern_edges_ms(pattern: int, duration_ms: int) -> list[int]:
    """Times (ms from the start) at which the motor switches after switching on at 0."""
    weights = CUE_PATTERN_WEIGHTS[pattern]
    total = sum(weights)
    edges, acc = [], 0
    for w in weights:
        acc += w
        edges.append(duration_ms * acc // total)
    return edges


@dataclass(frozen=True)
class CueDecision:
    """One step's decision, as the device logs it in a CUE record."""

    step_number: int
    fpa_cdeg: int
    reason: int  # CueReason, 0 in band
    outcome: int | None  # CueOutcome, None in band
    pattern: int | None
    duration_ms: int | None


class CueEngine:
    """The device's per-step cue decision (``insolefw.cue.CueEngine``), step by step.

    ``decide(step_numbers, fpa_cdeg)`` runs the steps of one stream in order (the
    schedule counters and the PRNG start over with each stream, as on the device):
    each step's foot angle (0.01 deg) against the band, then the schedule.

    Parameters
    ----------
    settings
        The device's SETTINGS (checked as the device checks them).

    Attributes
    ----------
    decisions_
        One :class:`CueDecision` per step.
    cued_steps_
        The step numbers that got a cue.
    """

    decisions_: list[CueDecision]
    cued_steps_: list[int]

    def __init__(self, settings: Settings) -> None:
        self.settings = check_settings(settings)

    def decide(self, step_numbers: list[int], fpa_cdeg: list[int]) -> Self:
        s = self.settings
        rng = (s.seed & 0xFFFF) or SEED_ZERO
        eligible = 0
        decisions: list[CueDecision] = []
        for step, fpa in zip(step_numbers, fpa_cdeg, strict=True):
            error = fpa - s.fpa_target_cdeg
            excess = abs(error) - s.fpa_half_width_cdeg
            if excess <= 0:
                decisions.append(CueDecision(step, fpa, 0, None, None, None))
                continue
            reason = CueReason.TOE_IN if error > 0 else CueReason.TOE_OUT
            pattern = s.toe_in_pattern if error > 0 else s.toe_out_pattern
            duration = s.cue_duration_ms
            if s.cue_ms_per_deg:
                duration = min(duration + (s.cue_ms_per_deg * excess + 50) // 100, s.cue_max_ms)
            cycle = s.block_on_steps + s.block_off_steps
            if s.block_off_steps and (step - 1) % cycle >= s.block_on_steps:
                outcome = CueOutcome.NO_FEEDBACK_BLOCK
            else:
                eligible += 1
                outcome = CueOutcome.CUED
                if s.schedule == CueSchedule.EVERY_KTH and eligible % s.fade_every:
                    outcome = CueOutcome.FADED_EVERY_KTH
                elif s.schedule == CueSchedule.PROBABILITY:
                    rng = xorshift16(rng)
                    if rng % 100 >= s.fade_probability_pct:
                        outcome = CueOutcome.FADED_PROBABILITY
            decisions.append(CueDecision(step, fpa, int(reason), int(outcome), pattern, duration))
        self.decisions_ = decisions
        self.cued_steps_ = [d.step_number for d in decisions if d.outcome == CueOutcome.CUED]
        return self
