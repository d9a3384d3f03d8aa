# The cue engine (decision, schedules, pulse patterns) and the event log, with
# synthetic foot angles: no FPA estimator needed.
import micropython
import struct

from insolefw import protocol as P
from insolefw.cue import (CueEngine, CuePlayer, CUED, FADED_EVERY_KTH, FADED_PROBABILITY,
                          NO_FEEDBACK_BLOCK, REASON_TOE_IN, REASON_TOE_OUT, xorshift16)
from insolefw.eventlog import EventLog
from insolefw.settings import Settings, CUE_FPA_BAND, SCHEDULE_EVERY_KTH, SCHEDULE_PROBABILITY


def _band(target_cdeg=500, half_width_cdeg=200):
    s = Settings()
    s.cue_mode = CUE_FPA_BAND
    s.fpa_target_cdeg = target_cdeg
    s.fpa_half_width_cdeg = half_width_cdeg
    s.toe_in_pattern = 1
    s.toe_out_pattern = 3
    return s


def test_band_decides_toe_in_above_and_toe_out_below():
    s = _band(500, 200)  # 5° +- 2°
    engine = CueEngine()
    assert engine.decide(s, 1, 2000) == REASON_TOE_IN  # 20°: toes out too far
    assert engine.pattern == 1 and engine.outcome == CUED
    assert engine.decide(s, 2, -100) == REASON_TOE_OUT  # -1°: toes in too far
    assert engine.pattern == 3
    for fpa in (300, 500, 700):  # the band's edges are inside
        assert engine.decide(s, 3, fpa) == 0, fpa
    assert engine.decide(s, 4, 701) == REASON_TOE_IN
    assert engine.decide(s, 5, 299) == REASON_TOE_OUT
    assert engine.out_of_band == 4


def test_duration_fixed_or_scaled_and_capped():
    s = _band(0, 200)
    engine = CueEngine()
    engine.decide(s, 1, 1200)
    assert engine.duration_ms == 300  # fixed by default
    s.cue_duration_ms = 200
    s.cue_ms_per_deg = 50
    s.cue_max_ms = 600
    engine.decide(s, 2, 700)  # 5° beyond the band
    assert engine.duration_ms == 200 + 250, engine.duration_ms
    engine.decide(s, 3, -500)  # 3° beyond
    assert engine.duration_ms == 350, engine.duration_ms
    engine.decide(s, 4, 3000)  # 28° beyond: capped
    assert engine.duration_ms == 600


def test_every_kth_out_of_band_step_is_cued():
    s = _band()
    s.schedule = SCHEDULE_EVERY_KTH
    s.fade_every = 3
    engine = CueEngine()
    outcomes = []
    for step in range(1, 13):
        fpa = 500 if step % 4 == 0 else 2000  # every 4th step in band
        reason = engine.decide(s, step, fpa)
        outcomes.append(engine.outcome if reason else -1)
    # out-of-band steps 1 2 3 5 6 7 9 10 11: the 3rd, 6th and 9th of them are cued
    assert outcomes == [1, 1, 0, -1, 1, 1, 0, -1, 1, 1, 0, -1], outcomes
    assert outcomes.count(FADED_EVERY_KTH) == 6


def _probability_outcomes(seed, n, pct):
    s = _band()
    s.schedule = SCHEDULE_PROBABILITY
    s.fade_probability_pct = pct
    s.seed = seed
    engine = CueEngine()
    engine.reset(seed)
    out = []
    for step in range(1, n + 1):
        engine.decide(s, step, 2500)
        out.append(engine.outcome)
    return out


def test_probability_schedule_is_seeded_and_reproducible():
    a = _probability_outcomes(1234, 200, 30)
    assert a == _probability_outcomes(1234, 200, 30)
    assert a != _probability_outcomes(99, 200, 30)
    cued = a.count(CUED)
    assert 40 <= cued <= 80, cued  # 30 % of 200
    assert cued + a.count(FADED_PROBABILITY) == 200
    assert _probability_outcomes(5, 50, 100).count(CUED) == 50
    assert _probability_outcomes(5, 50, 0).count(CUED) == 0
    # The draw is the documented xorshift16 (7, 9, 8), r % 100 < pct
    x = 1234
    expected = []
    for _ in range(200):
        x = xorshift16(x)
        expected.append(CUED if x % 100 < 30 else FADED_PROBABILITY)
    assert a == expected


def test_xorshift16_has_full_period_and_seed_zero_works():
    x = 1
    seen = 0
    while True:
        x = xorshift16(x)
        seen += 1
        if x == 1:
            break
        assert 0 < x <= 0xFFFF
    assert seen == 65535, seen
    assert _probability_outcomes(0, 20, 50) == _probability_outcomes(0xACE1, 20, 50)


def test_no_feedback_blocks_suppress_cues_by_step_number():
    s = _band()
    s.block_on_steps = 3
    s.block_off_steps = 2
    engine = CueEngine()
    outcomes = []
    for step in range(1, 11):
        engine.decide(s, step, 2000)
        outcomes.append(engine.outcome)
    assert outcomes == [0, 0, 0, 3, 3, 0, 0, 0, 3, 3], outcomes
    assert outcomes.count(NO_FEEDBACK_BLOCK) == 4
    assert engine.out_of_band == 10 and engine.eligible == 6


def test_blocks_and_fading_combine():
    s = _band()
    s.block_on_steps = 4
    s.block_off_steps = 4
    s.schedule = SCHEDULE_EVERY_KTH
    s.fade_every = 2
    engine = CueEngine()
    outcomes = []
    for step in range(1, 13):
        engine.decide(s, step, 2000)
        outcomes.append(engine.outcome)
    # blocks: steps 1-4 feedback, 5-8 none, 9-12 feedback; every 2nd eligible step cued
    assert outcomes == [1, 0, 1, 0, 3, 3, 3, 3, 1, 0, 1, 0], outcomes


class _Motor:
    def __init__(self):
        self.log = []

    def on(self, duty):
        self.log.append(("on", duty))

    def off(self):
        self.log.append(("off", 0))


def _play(pattern, duration_ms, step_ms=1):
    motor = _Motor()
    player = CuePlayer(motor)
    player.start(pattern, duration_ms, 70, 1000)
    edges = [(0, "on")]
    t = 1000
    seen = 1
    while player.service(t) >= 0 or seen < len(motor.log):
        while seen < len(motor.log):
            edges.append((t - 1000, motor.log[seen][0]))
            seen += 1
        t += step_ms
        if t > 1000 + 10 * duration_ms:
            raise AssertionError("pattern never ended")
    while seen < len(motor.log):
        edges.append((t - 1000, motor.log[seen][0]))
        seen += 1
    assert motor.log[0] == ("on", 70)
    return edges


def test_patterns_switch_at_their_edges():
    assert _play(1, 300) == [(0, "on"), (300, "off")]
    assert _play(2, 300) == [(0, "on"), (100, "off"), (200, "on"), (300, "off")]
    assert _play(3, 250) == [(0, "on"), (50, "off"), (100, "on"), (150, "off"), (200, "on"),
                             (250, "off")]
    assert _play(4, 400) == [(0, "on"), (200, "off"), (300, "on"), (400, "off")]


def test_player_reports_time_to_next_edge_and_a_new_cue_replaces_the_old():
    motor = _Motor()
    player = CuePlayer(motor)
    player.start(2, 300, 50, 0)
    assert player.service(30) == 70
    player.start(1, 100, 90, 50)  # replaces the short-short at 50 ms
    assert motor.log[-1] == ("on", 90)
    assert player.service(120) == 30
    assert player.service(150) == -1
    assert motor.log[-1] == ("off", 0) and not player.active


def test_player_handles_the_clock_wrap():
    motor = _Motor()
    player = CuePlayer(motor)
    start = P.TIME_MASK - 50
    player.start(1, 200, 60, start)
    assert player.service((start + 100) & P.TIME_MASK) == 100
    assert player.service((start + 200) & P.TIME_MASK) == -1


def test_cue_record_layout_and_sentinels():
    engine = CueEngine()
    n = engine.pack(12, 1561, 16012, 16012, 180, 1850, 500, 300, 1, 0, 1, 60, 453, 9)
    assert n == P.CUE_LEN
    assert struct.unpack("<IIIIHhhHBBBBHH", engine.record) == (
        12, 1561, 16012, 16012, 180, 1850, 500, 300, 1, 0, 1, 60, 453, 9)
    engine.pack(-1, -1, 5, -1, -1, P.NA_I16, P.NA_I16, P.NA_U16, 4, 0, 1, 75, 200, -1)
    v = struct.unpack("<IIIIHhhHBBBBHH", engine.record)
    assert v[0] == 0xFFFFFFFF and v[1] == 0xFFFFFFFF and v[3] == 0xFFFFFFFF
    assert v[4] == P.NA_U16 and v[5] == P.NA_I16 and v[13] == P.NA_U16
    engine.pack(1, 1, 1, 1, 999999, 0, 0, 50, 1, 0, 1, 0, 50, 1)
    assert struct.unpack_from("<H", engine.record, 16)[0] == 65534  # latency saturates


# -- event log ----------------------------------------------------------------------

def _event(builder, ptype, time_ms, tag):
    record = bytearray(P.CUE_LEN)
    record[0] = tag
    length = P.STEP_LEN if ptype == P.T_STEP else P.CUE_LEN if ptype == P.T_CUE else P.HEEL_RAISE_LEN
    return builder.event(ptype, time_ms, record, length)


class _Sent:
    def __init__(self):
        self.packets = []

    def send(self, buf, n):
        self.packets.append(bytes(buf[:n]))


def test_event_log_resends_exact_bytes_by_type_and_seq():
    log = EventLog(bytearray(40 * 16))
    builder = P.PacketBuilder()
    sent = []
    for k in range(10):
        for ptype in (P.T_STEP, P.T_CUE) if k % 3 else (P.T_STEP, P.T_HEEL_RAISE):
            n = _event(builder, ptype, 1000 + k, k)
            log.append(builder.buf, n)
            sent.append(bytes(builder.buf[:n]))
    assert log.count == 16 and log.dropped == 4
    out = _Sent()
    buf = bytearray(P.MAX_PACKET + 2)
    # STEP seqs 0..9 were sent; the log still holds 2..9 (the 4 oldest packets dropped)
    assert log.plan(P.T_STEP, builder.next_seq(P.T_STEP), 0, 10) == (10, 2)
    assert log.resend(P.T_STEP, 0, 10, buf, out.send) == 8
    steps = [p for p in sent if p[1] == P.T_STEP]
    assert out.packets == steps[2:]
    # A range inside the log: nothing lost; a range in the future: nothing at all.
    assert log.plan(P.T_STEP, 10, 5, 3) == (3, 0)
    assert log.plan(P.T_STEP, 10, 10, 5) == (0, 0)
    assert log.plan(P.T_STEP, 10, 8, 5) == (2, 0)
    # HEEL_RAISE 0 was dropped, 1..3 are held.
    assert log.plan(P.T_HEEL_RAISE, builder.next_seq(P.T_HEEL_RAISE), 0, 4) == (4, 1)
    # A type whose packets were all dropped: all lost; one never sent: nothing.
    small = EventLog(bytearray(40 * 2))
    for k in range(3):
        small.append(builder.buf, _event(builder, P.T_CUE, k, k))
    small.append(builder.buf, _event(builder, P.T_STEP, 9, 9))
    small.append(builder.buf, _event(builder, P.T_STEP, 9, 9))
    cue_next = builder.next_seq(P.T_CUE)
    assert small.plan(P.T_CUE, cue_next, (cue_next - 3) & 0xFFFF, 3) == (3, 3)
    assert small.plan(P.T_HEEL_RAISE, 0, 0, 5) == (0, 0)


def test_event_log_plan_across_the_seq_wrap():
    log = EventLog(bytearray(40 * 8))
    builder = P.PacketBuilder()
    builder._seq[P.T_CUE] = 65530
    for k in range(12):
        log.append(builder.buf, _event(builder, P.T_CUE, k, k))
    # CUE seqs 65530..65535, 0..5 sent; the log holds the last 8: 65534..5
    assert builder.next_seq(P.T_CUE) == 6
    assert log.plan(P.T_CUE, 6, 65530, 12) == (12, 4)
    out = _Sent()
    assert log.resend(P.T_CUE, 65530, 12, bytearray(1030), out.send) == 8
    assert [p[2] | p[3] << 8 for p in out.packets] == [65534, 65535, 0, 1, 2, 3, 4, 5]


def test_event_log_append_does_not_allocate():
    log = EventLog(bytearray(40 * 4))
    builder = P.PacketBuilder()
    n = _event(builder, P.T_STEP, 1, 1)
    micropython.heap_lock()
    try:
        for _ in range(10):
            log.append(builder.buf, n)
    finally:
        micropython.heap_unlock()
    assert log.count == 4 and log.dropped == 6


def test_sample_log_keeps_live_samples_packets_and_resends_them_by_seq():
    from insolefw.eventlog import SAMPLE_SLOT

    log = EventLog(bytearray(SAMPLE_SLOT * 3), SAMPLE_SLOT, (P.T_SAMPLES,))
    assert log.logs(P.T_SAMPLES) and not log.logs(P.T_STEP)
    builder = P.PacketBuilder()
    lengths = []
    for first in range(0, 40, 8):  # five packets of 8 samples, 8 cells + IMU (28 bytes each)
        off = builder.samples_header(first, first, 8, 8, 1)
        n = off + 8 * 28
        builder.buf[P.HEADER_LEN + 4] = 8
        log.append(builder.buf, n)
        lengths.append(n)
    assert log.count == 3 and log.dropped == 2 and log.total == 5
    out = bytearray(SAMPLE_SLOT + 2)
    a, n = log.next_packet(P.T_SAMPLES, 0, 5, 0, out)
    assert n == lengths[2] and out[2] | out[3] << 8 == 2  # the oldest held: seq 2
    a, n = log.next_packet(P.T_SAMPLES, 0, 5, a, out)
    assert out[2] | out[3] << 8 == 3
    assert log.plan(P.T_SAMPLES, 5, 0, 5) == (5, 2)  # seqs 0 and 1 are gone for good
    # A packet longer than a slot (a serial batch) is not kept, and says so.
    log.append(bytearray(SAMPLE_SLOT + 10), SAMPLE_SLOT + 10)
    assert log.dropped == 3 and log.total == 5
