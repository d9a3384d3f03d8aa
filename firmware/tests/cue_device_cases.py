# Cueing through the whole Device: band cues from synthetic foot angles, refused
# settings, CUE_TEST, the metronome (run by fwtest_cue_device).
import asyncio
import struct
import time

from insolefw import protocol as P
from insolefw.settings import CUE_FPA_BAND, CUE_METRONOME
from cue_device_harness import (_command, _cues, _packets, _replay, _send, _settings, _steps,
                                device)


def test_band_cues_on_out_of_band_steps_with_low_latency():
    answer = _send(P.T_SETTINGS, _settings(cue_mode=CUE_FPA_BAND, fpa_target_cdeg=500,
                                           fpa_half_width_cdeg=200, toe_in_pattern=1,
                                           toe_out_pattern=2, cue_duty_pct=80))
    assert answer[0][1] == P.T_ACK, answer
    fpas = [2000, 500, -300, 800, 600, 700, 299]
    packets = _replay(10, fpas)
    cues = _cues(packets)
    steps = _steps(packets)
    assert len(steps) >= 7, len(steps)
    # Out of band: strides 1 (20°), 3 (-3°), 4 (8°), 7 (2.99°); 5° +- 2° holds the rest.
    assert [c[0] for c in cues] == [1, 3, 4, 7], cues
    assert [c[8] for c in cues] == [1, 2, 1, 2]  # toe-in, toe-out, toe-in, toe-out
    assert [c[10] for c in cues] == [1, 2, 1, 2]  # the patterns of the settings
    assert [c[5] for c in cues] == [2000, -300, 800, 299]
    for c in cues:
        assert c[9] == 0 and c[11] == 80 and c[12] == 300
        assert (c[6], c[7]) == (500, 200)
        assert c[4] <= 10000, c  # latency_us: FPA known -> motor on
        assert 0 <= c[3] - c[2] <= 10, c  # device ms
    # Each CUE comes before the STEP of the same number, whose FPA it judged.
    order = [(p[1], struct.unpack_from("<I", p, P.HEADER_LEN + (0 if p[1] == P.T_CUE else 24))[0])
             for p in packets if p[1] in (P.T_CUE, P.T_STEP)]
    for c in cues:
        step = [s for s in steps if s[12] == c[0]][0]
        assert step[4] == c[5], (step, c)
        assert step[0] <= c[1] <= step[1], (step, c)  # decided inside that stance
        assert order.index((P.T_CUE, c[0])) < order.index((P.T_STEP, c[0]))
    # The motor started at once for each cue (the later edges are the motor task's).
    on = [m for m in device().motor.log if m[1]]
    assert len(on) == 4 and on[0][1] == 80, device().motor.log


def test_invalid_settings_are_refused_and_change_nothing():
    before = _command(P.CMD_GET_SETTINGS)[0]
    bad = _settings(cue_mode=CUE_FPA_BAND)
    struct.pack_into("<H", bad, 14, 100)  # cue_max_ms below cue_duration_ms (300)
    error = _send(P.T_SETTINGS, bad)[0]
    assert error[1] == P.T_ERROR and error[12] == P.E_BAD_VALUE and error[13] == 14
    assert _command(P.CMD_GET_SETTINGS)[0][P.HEADER_LEN:] == before[P.HEADER_LEN:]


def test_cue_test_command_logs_a_test_cue():
    answer = _command(P.CMD_CUE_TEST, struct.pack("<HBB", 150, 40, 0))
    assert answer[0][1] == P.T_ACK
    cue = _cues(answer)[0]
    assert cue[8] == 4 and cue[9] == 0 and cue[11] == 40 and cue[12] == 150
    assert cue[0] == 0xFFFFFFFF and cue[4] <= 10000


def test_metronome_beats_at_the_set_rate():
    assert _send(P.T_SETTINGS, _settings(cue_mode=CUE_METRONOME, metronome_spm=120,
                                         metronome_pulse_ms=100, metronome_pattern=1,
                                         cue_duty_pct=55))[0][1] == P.T_ACK
    _command(P.CMD_REPLAY_BEGIN, struct.pack("<HBBBB", 10000, 0, 1, 0, 0))
    device().motor.log = []

    async def run(ms):
        tasks = [asyncio.create_task(device().metronome_task()),
                 asyncio.create_task(device().motor_task())]
        await asyncio.sleep_ms(ms)
        device().running = False
        device()._motor_flag.set()
        for task in tasks:
            task.cancel()

    device().running = True
    asyncio.run(run(1350))
    device().running = True
    device().player.active = False
    beats = _cues(_packets())
    assert [b[0] for b in beats] == [1, 2, 3], beats  # beats at 0, 500 and 1000 ms
    assert all(b[8] == 3 and b[11] == 55 and b[12] == 100 for b in beats)
    due = [b[2] for b in beats]
    assert due[1] - due[0] == 500 and due[2] - due[1] == 500, due
    assert all(0 <= b[3] - b[2] <= 10 for b in beats), beats  # motor start within 10 ms of due
    # The motor ran ~100 ms per beat.
    log = device().motor.log
    ons = [t for t, duty in log if duty]
    offs = [t for t, duty in log if not duty]
    assert len(ons) == 3 and len(offs) >= 2, log
    for t_on, t_off in zip(ons, offs):
        assert 95 <= time.ticks_diff(t_off, t_on) <= 125, log
    _command(P.CMD_REPLAY_END)
