# ImuTracker under MicroPython: update() allocates nothing, analyse() gets a synthetic
# stride right (length, direction, foot angle), backward and tilted too.
import gc
import math
import micropython
from array import array

from insolefw.imu import ImuTracker, IMU_IC, IMU_TO, IMU_STRIDE, DIR_FORWARD, DIR_BACKWARD
from insolefw.protocol import NA_I16

_G = 9.80665
_RATE = 100
_STANCE = 60  # samples standing still between swings
_SWING = 40  # samples of swing
_STRIDE_M = 1.2
_PITCH_DEG = 30.0  # pitch scale: toes down ~10 deg at push-off, up ~55 deg in the swing
_PUSH = 0.3  # share of the toes-down term


def _sample(x, y, z, gx, gy, gz, tilt_deg):
    # m/s^2 and deg/s in the foot frame -> the counts of a sensor rolled tilt_deg about
    # the foot's long axis (a mounting tilt).
    c = math.cos(math.radians(tilt_deg))
    s = math.sin(math.radians(tilt_deg))
    y, z = c * y + s * z, -s * y + c * z
    gy, gz = c * gy + s * gz, -s * gy + c * gz
    k = 1000 / _G
    return array("h", (round(x * k), round(y * k), round(z * k), round(gx * 10), round(gy * 10), round(gz * 10)))


def _stride_samples(tilt_deg=0.0):
    # One stride of a foot walking along +x: still stance, then a swing whose position,
    # pitch and accelerometer agree (specific force rotated into the pitched foot), so
    # the integrated displacement must come out as _STRIDE_M along the foot's axis.
    gc.collect()
    still = _sample(0.0, 0.0, _G, 0.0, 0.0, 0.0, tilt_deg)
    out = [still] * _STANCE
    T = _SWING / _RATE
    a = math.radians(_PITCH_DEG)
    for i in range(_SWING + 1):
        t = i / _RATE
        w = 2 * math.pi * t / T
        # Push-off (toes rotate down), swing (up), landing (down), flat to flat.
        theta = a * (_PUSH * math.sin(w) - (1 - math.cos(w)))
        rate = a * 2 * math.pi / T * (_PUSH * math.cos(w) - math.sin(w))  # its derivative, rad/s
        ax_world = _STRIDE_M * 2 * math.pi / (T * T) * math.sin(w)
        c = math.cos(theta)
        s = math.sin(theta)
        out.append(_sample(c * ax_world - s * _G, 0.0, s * ax_world + c * _G, 0.0, math.degrees(rate), 0.0, tilt_deg))
    return out


def _walk(strides=8, reverse=False, tilt_deg=0.0, side=0):
    one = _stride_samples(tilt_deg)
    if reverse:
        # Time-reversed walking is backward walking: same accelerations, rates negated.
        # Reversed, a stride is its swing backwards, then the stance.
        back = [array("h", (s[0], s[1], s[2], -s[3], -s[4], -s[5])) for s in reversed(one)]
        one = back[_SWING + 1:] + back[:_SWING + 1]
    n = strides * len(one) + _STANCE
    tracker = ImuTracker()
    tracker.reset(_RATE * 100, side)
    results = []
    kinds = bytearray(4 * strides)  # 1: toe-off, 2: contact; filled inside the lock
    at = array("i", bytes(16 * strides))
    count = 0
    micropython.heap_lock()
    try:
        for i in range(n):
            bits = tracker.update(i, one[i % len(one)])
            if bits & IMU_TO:
                kinds[count] = 1
                at[count] = tracker.to_index
                count += 1
            if bits & IMU_IC:
                kinds[count] = 2
                at[count] = tracker.ic_index
                count += 1
            if bits & IMU_STRIDE:
                micropython.heap_unlock()  # the per-stride work may allocate
                tracker.analyse()
                results.append((tracker.direction, tracker.stride_mm, tracker.fpa_cdeg, tracker.speed_mms,
                                tracker.stride_end_index, i))
                micropython.heap_lock()
    finally:
        micropython.heap_unlock()
    events = [("to" if kinds[k] == 1 else "ic", at[k]) for k in range(count)]
    return results, events


def test_update_allocates_nothing_and_strides_come_out_right():
    results, events = _walk()
    assert len(results) == 8, results
    for direction, stride_mm, fpa, speed, end, at in results:
        assert direction == DIR_FORWARD, results
        assert abs(stride_mm - 1200) <= 60, results
        assert fpa != NA_I16 and abs(fpa) <= 150, results  # straight along the foot: 0 deg
        assert end <= at, results
    # A stride every 101 samples: 1.2 m / 1.01 s, from the second on.
    assert all(abs(r[3] - 1188) <= 80 for r in results[1:]), results
    # Events alternate: toe-off of one stance, then the contact of the next.
    kinds = [k for k, _ in events]
    assert kinds[:4] == ["to", "ic", "to", "ic"], events
    for (k0, i0), (k1, i1) in zip(events, events[1:]):
        if k0 == "to":
            assert k1 == "ic" and 0 < i1 - i0 < _SWING + 10, events


def test_events_sit_at_the_swing_lobe():
    _, events = _walk(strides=3)
    # The pitch rate cos(w + phi) crosses zero at w = pi/2 - phi (the swing lobe opens:
    # toe-off 17 ms = 1.7 samples earlier) and at w = 3 pi/2 - phi (it closes: contact).
    phi = math.atan2(1, _PUSH)
    opens = (math.pi / 2 - phi) / (2 * math.pi) * _SWING
    closes = (3 * math.pi / 2 - phi) / (2 * math.pi) * _SWING
    swing_starts = [_STANCE + k * (_STANCE + _SWING + 1) for k in range(3)]
    tos = [i for k, i in events if k == "to"]
    ics = [i for k, i in events if k == "ic"]
    assert len(tos) == 3 and len(ics) == 3, events
    for start, to, ic in zip(swing_starts, tos, ics):
        assert abs(to - (start + opens - 1.7)) <= 1, (start, opens, events)
        assert abs(ic - (start + closes)) <= 1, (start, closes, events)


def test_time_reversed_walk_is_backward():
    results, _ = _walk(reverse=True)
    assert len(results) == 8, results
    for direction, stride_mm, fpa, speed, end, at in results:
        assert direction == DIR_BACKWARD, results
        assert abs(stride_mm - 1200) <= 60, results
        assert abs(fpa) <= 150, results


def test_mounting_tilt_is_levelled_away():
    for tilt in (30.0, -45.0):
        results, _ = _walk(tilt_deg=tilt, side=1)
        assert len(results) == 8, (tilt, results)
        for direction, stride_mm, fpa, speed, end, at in results:
            assert direction == DIR_FORWARD, (tilt, results)
            assert abs(stride_mm - 1200) <= 60, (tilt, results)
            assert abs(fpa) <= 150, (tilt, results)


def test_unknown_side_gives_no_angle():
    results, _ = _walk(strides=3, side=0xFF)
    assert results and all(r[2] == NA_I16 and r[0] == DIR_FORWARD for r in results), results


def test_yaw_offset_turns_the_angle_by_side():
    one = _stride_samples()
    for side, sign in ((0, -1), (1, 1)):
        tracker = ImuTracker()
        tracker.reset(_RATE * 100, side)
        tracker.yaw_offset_cdeg = 500
        fpas = []
        for i in range(3 * len(one)):
            if tracker.update(i, one[i % len(one)]) & IMU_STRIDE:
                tracker.analyse()
                fpas.append(tracker.fpa_cdeg)
        assert fpas and all(abs(f - sign * 500) <= 150 for f in fpas), (side, fpas)


def test_missing_samples_repeat_the_last_one():
    one = _stride_samples()
    na = array("h", (NA_I16,) * 6)
    tracker = ImuTracker()
    tracker.reset(_RATE * 100, 0)
    lengths = []
    for i in range(4 * len(one)):
        s = na if i % len(one) == 10 else one[i % len(one)]  # one gap per stance
        if tracker.update(i, s) & IMU_STRIDE:
            tracker.analyse()
            lengths.append(tracker.stride_mm)
    assert len(lengths) == 3 and all(abs(v - 1200) <= 60 for v in lengths), lengths
