# Pressure contact events and heel raises on synthetic signals whose events are known
# by construction (insolefw.contact, GaitCore's pressure path).
import micropython
import struct
from array import array

from insolefw import protocol as P
from insolefw.contact import PressureContact, HeelRaises
from insolefw.gait import EventQueue, GaitCore

_RATE = 10000  # 100 Hz


_RISE = 10
_FLAT = 40
_FALL = 10
_STANCE = _RISE + _FLAT + _FALL


def _stance_value(load, k):
    # One stance: linear rise from 0, a plateau, linear fall to 0.
    if k < _RISE:
        return load * (k + 1) // _RISE
    if k < _RISE + _FLAT:
        return load
    return load * (_STANCE - 1 - k) // _FALL


def _walk(n_steps, load=10000, swing=40, first_swing=40):
    # Totals of a walk (array 'i') and the true first-above-floor / first-at-10 % indices.
    n = first_swing + n_steps * (_STANCE + swing)
    totals = array("i", bytes(4 * n))
    onsets = []
    offs = []
    for step in range(n_steps):
        start = first_swing + step * (_STANCE + swing)
        onsets.append(start)
        off = -1
        for k in range(_STANCE):
            v = _stance_value(load, k)
            totals[start + k] = v
            if off < 0 and k >= _RISE + _FLAT and v <= load // 10:
                off = start + k
        offs.append(off)
    return totals, onsets, offs


def _run(sources):
    contact = PressureContact()
    contact.reset(_RATE)
    ics = []
    tos = []
    i = 0
    for totals in sources:
        for t in totals:
            event = contact.update(i, t, 0)
            if event == 1:
                ics.append(contact.ic_index)
            elif event == 2:
                tos.append((contact.ic_index, contact.to_index))
            i += 1
    return ics, tos


def _repeat(value, n):
    for _ in range(n):
        yield value


def test_contact_events_at_their_levels():
    totals, onsets, offs = _walk(6)
    ics, tos = _run([totals])
    # IC: the first sample of the rise (above 1.2 % of the range); TO: first at or below 10 %.
    assert ics == onsets, (ics, onsets)
    assert [to for _, to in tos] == offs, (tos, offs)


def test_stream_starting_in_stance_gives_no_initial_contact():
    totals, onsets, _ = _walk(4)
    cut = onsets[0] + 20  # mid-stance
    ics, tos = _run([totals[cut:]])
    assert ics == [o - cut for o in onsets[1:]], (ics, onsets)
    assert len(tos) == 3, tos


def test_dip_inside_stance_is_not_a_toe_off():
    totals, onsets, _ = _walk(3)
    mid = onsets[1] + 30
    totals[mid] = 500  # two samples at 5 %: below the toe-off level, above the floor
    totals[mid + 1] = 500
    ics, tos = _run([totals])
    assert len(ics) == 3 and len(tos) == 3, (ics, tos)


def test_weight_shift_onto_the_other_foot_is_not_a_toe_off():
    # Mid-stance the load falls to 5 % for 100 ms (three times the toe-off
    # confirmation) but never back to the unloaded level: the foot stayed on the ground.
    totals, onsets, offs = _walk(3)
    shift = onsets[1] + 15
    for i in range(shift, shift + 10):
        totals[i] = 500
    ics, tos = _run([totals])
    assert ics == onsets, (ics, onsets)
    assert [to for _, to in tos] == offs, (tos, offs)


def test_slow_first_loading_backtracks_to_its_onset():
    # A stream that starts unloaded, then a foot set down slowly (2 counts a sample):
    # the stance is confirmed at sample 71, 31 samples after its onset at 40. The walk
    # back is bounded by the 64 samples of history before the confirming sample,
    # not by sample 64 of the stream.
    ics, _ = _run([_repeat(0, 40), range(2, 202, 2), _repeat(200, 40)])
    assert ics == [40], ics


def _sway(n):
    # 20 % .. 80 % of a load swaying with a 4 s period: the foot never unloads.
    for i in range(n):
        phase = i % 400
        tri = phase if phase < 200 else 400 - phase  # 0..200
        yield 2000 + 30 * tri


def test_standing_weight_shift_takes_no_steps():
    ics, tos = _run([_sway(4000)])
    assert not ics and not tos, (ics, tos)


def test_light_loads_after_walking_are_not_steps():
    # Walking, then the foot lifted and set down at 15 % of the walking load (seated).
    totals, onsets, _ = _walk(6)
    sources = [totals]
    for _ in range(8):
        sources += [_repeat(0, 60), _repeat(1500, 150)]
    ics, _ = _run(sources)
    assert ics == onsets, (ics, onsets)


def _bell(i, n, peak):
    # A triangle of n samples peaking at `peak` (a rising or lowering rotation).
    half = n // 2
    return peak * (i + 1) // half if i < half else peak * (n - i) // half


def _raise_inputs(n_stand, n_rise, n_hold, n_lower, n_after, rate_peak):
    # (total, heel, fore, pitch rate) per sample of one raise from standing.
    for _ in range(n_stand):
        yield 1000, 480, 420, 0
    for i in range(n_rise):
        yield 1000, 20, 900, _bell(i, n_rise, rate_peak)  # heel off at once
    for _ in range(n_hold):
        yield 1000, 10, 920, 3
    for i in range(n_lower):
        yield 1000, 20, 900, -_bell(i, n_lower, rate_peak)
    for _ in range(n_after):
        yield 1000, 480, 420, 0


def _standing(n):
    for _ in range(n):
        yield 1000, 480, 420, 0


def _raises(sources, with_rate):
    raises = HeelRaises()
    raises.reset(_RATE)
    out = []
    i = 0
    for rows in sources:
        for total, heel, fore, rate in rows:
            if raises.update(i, total, heel, fore, True, rate if with_rate else P.NA_I16):
                out.append(struct.unpack("<IIHHHH", raises.record))
            i += 1
    return out


def test_heel_raise_hold_is_the_time_at_the_top():
    with_rate = _raises([_raise_inputs(100, 100, 300, 100, 100, 400)], True)
    assert len(with_rate) == 1, with_rate
    start, end, hold_ms, rep, set_ = with_rate[0][:5]
    assert (rep, set_) == (1, 1)
    assert start == 100 and end == 600, (start, end)
    # The top lasts 3000 ms; the rate thresholds (1/16 of the peak) add a little.
    assert 2900 <= hold_ms <= 3300, hold_ms
    without = _raises([_raise_inputs(100, 100, 300, 100, 100, 400)], False)
    assert without[0][2] == 5000, without  # the whole time the heel was up


def test_heel_raises_count_reps_and_sets():
    sources = [_raise_inputs(100, 100, 200, 100, 0, 400) for _ in range(3)]
    sources.append(_standing(2000))  # 20 s rest: a new set
    sources += [_raise_inputs(100, 100, 200, 100, 0, 400) for _ in range(2)]
    sources.append(_standing(100))
    found = _raises(sources, True)
    assert [(r[3], r[4]) for r in found] == [(1, 1), (2, 1), (3, 1), (1, 2), (2, 2)], found


def test_walking_heel_off_is_no_heel_raise():
    # Flat foot, heel off onto the forefoot for 300 ms, then the foot leaves the ground.
    raises = HeelRaises()
    raises.reset(_RATE)
    for step in range(10):
        base = step * 110
        for i in range(60):
            raises.update(base + i, 1000, 480, 420, True, 0)
        for i in range(30):
            raises.update(base + 60 + i, 1000, 30, 900, True, 300)
        for i in range(20):
            assert not raises.update(base + 90 + i, 0, 0, 0, False, -300)
    assert raises.rep == 0


def test_missing_channels_keep_their_last_reading():
    # A dropout of every channel inside a stance must not end it (Moticon rows).
    events = EventQueue()
    core = GaitCore(events)
    core.configure(_RATE, 4, 0, 0)
    core.set_layout((20, 0, 90, 20, 160, -20, 230, 0), 0)
    pressure = array("H", bytes(32))
    imu = array("h", bytes(12))
    totals, onsets, _ = _walk(5, load=8000)
    for i in range(len(totals)):
        t = totals[i]
        for k in range(4):
            pressure[k] = t // 4
        if i in (onsets[2] + 25, onsets[2] + 26, onsets[3] + 5):
            for k in range(4):
                pressure[k] = P.NA_U16
        core.process(pressure, imu)
    assert core.steps == 5, core.steps


def test_heel_raise_path_does_not_allocate():
    # GaitCore's pressure path with the IMU's pitch rate, through a whole raise, under
    # heap_lock (the inputs are changed in place, nothing is made per sample).
    events = EventQueue()
    core = GaitCore(events)
    core.configure(_RATE, 4, 1, 0)
    core.set_layout((20, 0, 90, 20, 200, -20, 240, 0), 0)  # heel, midfoot, forefoot, toes
    pressure = array("H", bytes(32))
    imu = array("h", bytes(12))
    record = bytearray(P.STEP_LEN)
    phases = ((300, 4000, 1000, 3000, 2000, 0), (100, 50, 300, 5000, 4600, 1),
              (300, 30, 300, 5200, 4500, 2), (100, 50, 300, 5000, 4600, 3), (300, 4000, 1000, 3000, 2000, 0))
    index = 0
    raised = 0
    micropython.heap_lock()
    try:
        for n, heel, mid, fore, toes, kind in phases:
            pressure[0] = heel
            pressure[1] = mid
            pressure[2] = fore
            pressure[3] = toes
            for i in range(n):
                if kind == 1:
                    imu[4] = 4 * _bell(i, n, 100)  # rising rotation, 40 deg/s peak
                elif kind == 3:
                    imu[4] = -4 * _bell(i, n, 100)
                else:
                    imu[4] = 2
                core._process_pressure(index, pressure, imu)
                index += 1
            while True:
                info = events.pop_into(record)
                if not info:
                    break
                raised += (info >> 8) == P.T_HEEL_RAISE
    finally:
        micropython.heap_unlock()
    assert raised == 1, raised
    start, end, hold_ms = struct.unpack_from("<IIH", core.raises.record)
    assert start == 300 and end == 800, (start, end)
    assert 3000 <= hold_ms <= 3300, hold_ms
