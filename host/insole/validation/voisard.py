"""Voisard et al.'s foot-dorsum IMU walks (``../shared/data/voisard_dev``) as foot streams with labels.

Each trial: stand, walk 10 m, U-turn, walk back, stop (100 Hz, Xsens MTw on the dorsum
of each foot, acc in m/s², gyro in rad/s, sensor axes tilted and turned against the
foot). The labels are ``[toe_off, heel_strike]`` sample pairs per swing, from two
published gyro-based detectors checked by hand; ``UTurnBoundaries`` delimit the turn.

The sensor axes are brought into the foot frame (x toes, y left, z up) from the data
alone, no labels: "up" is gravity over the calmest second of the trial; the
medio-lateral axis is the dominant horizontal axis of the angular rate while the foot
swings (the foot pitches about it); its sign makes the swing lobes of the pitch rate
negative (toes rotating up before contact), which holds for forward walking, the
protocol of every trial. A device gets the same from its mounting calibration (docs/calibration.md).

Source: Voisard C., de l'Escalopier N., Ricard D., Oudre L. "A reference data set for
the study of healthy subject gait with inertial measurement units", IPOL 2023,
doi:10.5201/ipol.2023.497 (AGPL-3.0; only subjects 1-5 are in the shared folder).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from insole.model import FloatArray, FootStream, Side
from insole.resources import shared_data_dir
from insole.validation.references import ReferenceSteps

RATE_HZ = 100.0
RAD_TO_DEG = 180.0 / math.pi
_SWING_DPS = 100.0  # samples turning faster than this are the swings the axis is learnt from
_CALM_WINDOW_S = 1.0
# The labels cover the walk between TrialBoundaries (its first toe-off to its last heel
# strike); detections this far outside are scored, beyond it the walker stands.
SCORE_MARGIN_S = 0.5


def voisard_dir() -> Path:
    return shared_data_dir() / "voisard_dev"


def voisard_trial_names(folder: Path | None = None) -> list[str]:
    """Trial names ``S-T`` in subject, trial order."""
    folder = folder or voisard_dir()
    names = [p.stem for p in folder.glob("*.json")]
    return sorted(names, key=lambda n: tuple(int(x) for x in n.split("-")))


@dataclass
class VoisardTrial:
    """Both feet of one trial, in the foot frame, with the labelled steps (times in s)."""

    name: str
    subject: int
    streams: list[FootStream]  # left, right
    references: list[ReferenceSteps]  # parallel to streams
    trial_s: tuple[float, float]  # walking starts and ends
    turn_s: tuple[float, float]  # the U-turn


def read_foot_file(path: Path) -> tuple[FloatArray, FloatArray, int]:
    """acc [m/s²] and gyro [deg/s] on the packet counter's grid (sample k at counter k,
    the labels' index), and how many lost packets were filled in.

    The wireless sensors lose packets, mostly near the end of the room (up to ~12 % of
    a trial's second half); the rows skip those counter values. Lost samples are
    interpolated linearly from their neighbours: playing the rows back to back would
    shift every later label by the number of packets lost before it.
    """
    with path.open(encoding="utf-8") as f:
        first = f.readline()
        if "100 Hz" not in first:
            raise ValueError(f"{path}: expected 'Acquisition frequency: 100 Hz', got {first.strip()!r}")
        header = f.readline().split()
        data = np.loadtxt(f, delimiter="\t", ndmin=2)
    counter = data[:, header.index("PacketCounter")].astype(np.int64)
    if np.any(np.diff(counter) <= 0):
        raise ValueError(f"{path}: PacketCounter does not increase")
    grid = np.arange(int(counter[-1]) + 1)
    columns = [header.index(f"{kind}_{a}") for kind in ("Acc", "Gyr") for a in "XYZ"]
    values = np.column_stack([np.interp(grid, counter, data[:, c]) for c in columns])
    return values[:, :3], values[:, 3:] * RAD_TO_DEG, len(grid) - len(counter)


def foot_frame_rotation(acc_ms2: FloatArray, gyro_dps: FloatArray, rate_hz: float = RATE_HZ) -> FloatArray:
    """The 3×3 matrix whose rows are the foot's x, y, z in sensor axes (see the module)."""
    window = max(1, int(_CALM_WINDOW_S * rate_hz))
    activity = np.abs(gyro_dps).sum(axis=1)
    moving = np.convolve(activity, np.ones(window) / window, mode="valid")
    calm = int(np.argmin(moving))
    up = acc_ms2[calm : calm + window].mean(axis=0)
    up /= np.linalg.norm(up)
    swing = gyro_dps[np.linalg.norm(gyro_dps, axis=1) > _SWING_DPS]
    horizontal = swing - np.outer(swing @ up, up)
    _, _, vt = np.linalg.svd(horizontal, full_matrices=False)
    left = vt[0] - (vt[0] @ up) * up
    left /= np.linalg.norm(left)
    if _swing_lobe_sign(gyro_dps @ left) > 0:  # walking forward the swing pitches toes-up: negative about +y
        left = -left
    toes = np.cross(left, up)
    return np.vstack([toes, left, up])


def _swing_lobe_sign(pitch_dps: FloatArray) -> int:
    """The sign of the swing lobes: between two zero crossings of the pitch rate, the
    swing sweeps the most pitch of a stride (the foot is flat at both ends, so the swing
    lobe balances the push-off and foot-flat lobes together); squared lobe areas weigh
    the swings over the many smaller lobes of the opposite sign."""
    crossings = np.flatnonzero(np.diff(np.signbit(pitch_dps))) + 1
    areas = np.add.reduceat(pitch_dps, np.r_[0, crossings])
    return 1 if float(np.sum(areas * np.abs(areas))) > 0 else -1


def load_voisard_trial(name: str, folder: Path | None = None) -> VoisardTrial:
    folder = folder or voisard_dir()
    meta = json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))
    streams: list[FootStream] = []
    references: list[ReferenceSteps] = []
    for side, suffix, key in (("left", "lf", "LeftFootEvents"), ("right", "rf", "RightFootEvents")):
        acc, gyro, lost = read_foot_file(folder / f"{name}_{suffix}.txt")
        rotation = foot_frame_rotation(acc, gyro)
        foot_side: Side = "left" if side == "left" else "right"
        streams.append(FootStream(side=foot_side, rate_hz=RATE_HZ, t0_s=0.0, layout="", pressure=None,
                                  pressure_unit="", acc_ms2=acc @ rotation.T, gyro_dps=gyro @ rotation.T,
                                  device="Xsens MTw Awinda (foot dorsum)", extra={"voisard_trial": name, "lost_samples_filled": lost}))
        swings = np.asarray(meta[key], dtype=np.float64).reshape(-1, 2)
        references.append(ReferenceSteps(foot_side, ic_s=swings[:, 1] / RATE_HZ, to_s=swings[:, 0] / RATE_HZ,
                                         source="Voisard labels (gyro detectors, checked by hand)"))
    trial = tuple(x / RATE_HZ for x in meta["TrialBoundaries"])
    turn = tuple(x / RATE_HZ for x in meta["UTurnBoundaries"])
    references = [dataclasses.replace(r, score_from_s=trial[0] - SCORE_MARGIN_S, score_to_s=trial[1] + SCORE_MARGIN_S)
                  for r in references]
    return VoisardTrial(name=name, subject=int(meta["Subject"]), streams=streams, references=references,
                        trial_s=(trial[0], trial[1]), turn_s=(turn[0], turn[1]))
