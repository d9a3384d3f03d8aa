"""A recording of two IMU-only insoles whose STEP packets hold partial stances
(docs/protocol.md, "Partial stances"), as the host consumers' tests read it.

100 Hz, 1200 samples per foot, the feet at rest (the samples do not matter: the events
are the insoles' own). The left foot starts from standing, stops and walks on, and ends
standing; the right foot's stance that came to rest lost its second half.

left (step_number: ic..to, sample indices):
  1: n/a..40   the stream began at rest: its first toe-off only
  2: 140..200  whole, 3: 250..310 whole
  4: 360..n/a  came to rest, then 4: n/a..900 its toe-off (one step, joined: 360..900)
  5: 1000..1060 whole
  6: 1110..n/a the stream ended standing
right: 1: 195..255, 2: 305..365 whole; 3: 415..n/a (its toe-off never came); 4: 600..660
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from insole.model import FootStream, Side
from insole.protocol import Direction, Settings, Step
from insole.recording import RecordingWriter, write_recording

RATE_HZ = 100.0
N_SAMPLES = 1200
BAND = Settings(fpa_target_cdeg=500, fpa_half_width_cdeg=300)  # 5° ± 3°
IMU_CONTACT = 2  # STEP flags bit 1: contact from the IMU

LEFT_RECORDS = (
    Step(None, 40, None, None, None, Direction.UNKNOWN, IMU_CONTACT, None, None, None, None, 1),
    Step(140, 200, 600, 1000, 500, Direction.FORWARD, IMU_CONTACT, None, None, 1300, 1200, 2),
    Step(250, 310, 600, 500, 900, Direction.FORWARD, IMU_CONTACT, None, None, 1310, 1210, 3),
    Step(360, None, None, 500, 520, Direction.FORWARD, IMU_CONTACT, None, None, 1290, 1190, 4),
    Step(None, 900, None, None, None, Direction.UNKNOWN, IMU_CONTACT, None, None, None, None, 4),
    Step(1000, 1060, 600, 1000, 480, Direction.FORWARD, IMU_CONTACT, None, None, 1280, 1180, 5),
    Step(1110, None, None, 500, 470, Direction.FORWARD, IMU_CONTACT, None, None, 1300, 1200, 6),
)
RIGHT_RECORDS = (
    Step(195, 255, 600, None, 450, Direction.FORWARD, IMU_CONTACT, None, None, 1300, 1200, 1),
    Step(305, 365, 600, 500, 460, Direction.FORWARD, IMU_CONTACT, None, None, 1300, 1200, 2),
    Step(415, None, None, 500, 470, Direction.FORWARD, IMU_CONTACT, None, None, 1300, 1200, 3),
    Step(600, 660, 600, None, 440, Direction.FORWARD, IMU_CONTACT, None, None, None, None, 4),
)
# Each stance once: left 6 (seven records), right 4.
LEFT_STANCES = 6
RIGHT_STANCES = 4


def imu_stream(side: Side) -> FootStream:
    acc = np.tile([0.0, 0.0, 9.81], (N_SAMPLES, 1))
    return FootStream(side, RATE_HZ, 0.0, "", None, "", acc, np.zeros((N_SAMPLES, 3)))


def write_partial_stance_recording(path: Path) -> None:
    """The recording of the module's text, events in the order the insoles sent them."""
    write_recording(path, [imu_stream("left"), imu_stream("right")], source="device")
    with RecordingWriter(path, {}, append=True) as writer:
        for stream_id, records in enumerate((LEFT_RECORDS, RIGHT_RECORDS)):
            writer.append(stream_id, BAND.encode(), 0)
            for seq, step in enumerate(records):
                writer.append(stream_id, step.encode(seq=seq), 0)
