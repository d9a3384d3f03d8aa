# Per-stride work of the IMU tracker (insolefw/imu.py): levelling, gyroscope
# integration, displacement, direction and foot progression angle. Runs once per
# stride, between samples. ImuTracker imports it when it is built, after the
# firmware's large buffers: on the unix port every import compiles, and its leftovers
# break up the free heap. Host twin: host/insole/gait/stride.py (bit for bit).
from micropython import const
import math

from insolefw.units import samples_for_ms

_RING_MASK = const(255)  # as in imu.py
_AXIS_ONE = const(4096)
_ONE = const(16384)  # Q14
_STILL_GYR = const(500)  # 0.1 deg/s: a calm slot for the integration (imu.py's stance test is looser)
_ACC2_LO = const(640000)
_ACC2_HI = const(1440000)
_GRAVITY_MS = const(20)  # gravity: mean over +-20 ms around the stride's end samples
_TURN_DEG = const(25)  # the foot's heading turned more: direction unknown, no FPA
_CONE_DEG = const(60)  # forward / backward within this angle of the foot's axis
_MIN_STRIDE_MM = const(100)
_MAX_STRIDE_MS = const(2500)  # speed only over initial contacts at most this far apart
_IMU_X_MM = const(100)  # the IMU (PCB under the arch) lies this far ahead of the heel centre


def analyse(t):
    # t: the ImuTracker whose reported stride (t._stride) is analysed into its results.
    stride = t._stride
    m0, still, last, ic, _, prev, _ = stride
    stride[4] = ic  # imu._S_PUBLISH: the next update() reports it
    stride[5] = ic  # imu._S_PREV_IC
    t.stride_end_index = last
    sh = t._shift
    ring = t._ring
    # Ring slots (1 << sh samples each) wholly inside the still phase before the motion
    # (at most its last _SEARCH_MS) and the one after it; the stride runs between
    # their calmest slots.
    a_hi = (m0 >> sh) - 1
    a_lo = a_hi
    lo = (m0 - t._n[2]) >> sh  # imu._N_SEARCH
    while a_lo > lo and _calm(ring, a_lo - 1) >= 0:
        a_lo -= 1
    b_lo = (still + (1 << sh) - 1) >> sh
    b_hi = ((last + 1) >> sh) - 1
    z0 = _calmest(ring, a_lo, a_hi)
    z1 = _calmest(ring, b_lo, b_hi)
    half = samples_for_ms(_GRAVITY_MS, t.rate_chz) >> sh
    dx, dy, heading = _integrate(ring, z0, z1, _gravity(ring, max(a_lo, z0 - half), min(a_hi, z0 + half)),
                                 t._rest, (100 << sh) / t.rate_chz)
    gx, gy, gz, _ = _unit(_gravity(ring, max(b_lo, z1 - half), min(b_hi, z1 + half)))
    if gz > -0.9:
        # The next stride's pitch axis: the levelled frame's +y in sensor axes (the
        # smallest rotation that turns gravity to vertical keeps it), Q12.
        c = 1.0 + gz
        u = t._axis
        u[0] = round(-gx * gy / c * _AXIS_ONE)
        u[1] = round((1.0 - gy * gy / c) * _AXIS_ONE)
        u[2] = round(-gy * _AXIS_ONE)
    # The heel's displacement: the IMU's, minus what the foot's turn between the two
    # stances moved the IMU about the heel.
    dx -= _IMU_X_MM / 1000 * (math.cos(heading) - 1)
    dy -= _IMU_X_MM / 1000 * math.sin(heading)
    length = math.sqrt(dx * dx + dy * dy)
    theta = math.atan2(dy, dx)
    # Direction against the mean of the two stances' foot axes.
    off_axis = abs(math.degrees(_wrap(theta - heading / 2)))
    direction = 0
    if length * 1000 >= _MIN_STRIDE_MM and abs(math.degrees(_wrap(heading))) <= _TURN_DEG:
        if off_axis <= _CONE_DEG:
            direction = 1  # imu.DIR_FORWARD
        elif off_axis >= 180 - _CONE_DEG:
            direction = 2  # imu.DIR_BACKWARD
    t.direction = direction
    side = t.side
    if direction and side in (0, 1):
        # FPA: the displacement into this stance (reversed walking backward) seen from
        # its foot axis, positive toe-out on both feet; minus the mounting yaw.
        if direction == 2:
            theta += math.pi
        cdeg = round(math.degrees(_wrap(theta - heading)) * 100)
        cdeg = (cdeg + t.yaw_offset_cdeg) if side else (-cdeg - t.yaw_offset_cdeg)
        t.fpa_cdeg = max(-9000, min(9000, cdeg))
    t.stride_mm = min(round(length * 1000), 65534)
    if prev >= 0 and 0 < ic - prev <= samples_for_ms(_MAX_STRIDE_MS, t.rate_chz):
        t.speed_mms = min(round(length * 1000 * t.rate_chz / (100 * (ic - prev))), 65534)


def _calm(ring, s):
    # The slot's |gx|+|gy|+|gz| if it passes the still test, else -1.
    p = (s & _RING_MASK) * 6
    l1 = abs(ring[p + 3]) + abs(ring[p + 4]) + abs(ring[p + 5])
    a2 = 0
    for k in range(3):
        a = ring[p + k]
        a2 += a * a
    return l1 if l1 < _STILL_GYR and _ACC2_LO <= a2 <= _ACC2_HI else -1


def _calmest(ring, lo, hi):
    # The slot with the smallest |gx|+|gy|+|gz| (the first of equals).
    best = lo
    low = 1 << 20
    for s in range(lo, hi + 1):
        p = (s & _RING_MASK) * 6
        v = abs(ring[p + 3]) + abs(ring[p + 4]) + abs(ring[p + 5])
        if v < low:
            low = v
            best = s
    return best


def _gravity(ring, lo, hi):
    g = [0, 0, 0]
    for s in range(lo, hi + 1):
        p = (s & _RING_MASK) * 6
        for k in range(3):
            g[k] += ring[p + k]
    n = hi - lo + 1
    return g[0] / n, g[1] / n, g[2] / n


def _unit(g):
    n = math.sqrt(g[0] * g[0] + g[1] * g[1] + g[2] * g[2])
    return g[0] / n, g[1] / n, g[2] / n, n


def _integrate(ring, z0, z1, g, rest, dt):
    # Start attitude from the stance's gravity g (the smallest rotation to vertical:
    # mounting tilt removed, heading 0 = the foot's axis); gyroscope minus the rest bias
    # integrated through the stride; gravity removed; velocity integrated and its drift
    # removed as a ramp (zero at both still ends); position integrated once more.
    # Returns the horizontal displacement [m] in the start frame and the end stance's
    # heading [rad] (the attitude's twist about the vertical).
    #
    # Fixed point, so the loop allocates nothing (each float result would): quaternion
    # and rotation matrix in Q14, half-angle increments in Q14 with their rounding
    # remainder carried to the next slot (rounding cannot drift), acceleration in mg,
    # velocity and position as running sums in mg x slots.
    ux, uy, uz, gnorm = _unit(g)
    n = math.sqrt(2 + 2 * uz)
    q = [round((1 + uz) / n * _ONE), round(uy / n * _ONE), round(-ux / n * _ONE), 0]
    g0 = round(gnorm)  # mg
    # Half-angle [Q14 << 16] per sum of two consecutive rates [0.1 deg/s]; the bias in it.
    kfix = round(math.pi / 1800 * dt / 4 * (1 << 30))
    cnt = rest[3]
    b = [round(2 * rest[k] * kfix / cnt) if cnt else 0 for k in range(3)]
    carry = [0, 0, 0]  # rounding remainders
    h = [0, 0, 0]
    v = [0, 0, 0]  # 2 x velocity [mg x slots]
    pos = [0, 0, 0]  # 4 x position [mg x slots^2]
    e = [0, 0, 0]  # levelled acceleration of the previous slot, gravity removed [mg]
    r = [0] * 9  # rotation matrix, Q14
    a = [0, 0, 0]
    p = (z0 & _RING_MASK) * 6
    for s in range(z0, z1 + 1):
        w = p
        p = (s & _RING_MASK) * 6
        if s > z0:
            # Half-angle of the interval (mean rate, bias removed), remainder carried.
            for k in range(3):
                x = (ring[w + 3 + k] + ring[p + 3 + k]) * kfix - b[k] + carry[k]
                carry[k] = x & 0xFFFF
                h[k] = x >> 16
            # dq = (cos t, sin(t) / t * h) for the half-angle t = |h|, by their series.
            t2 = (h[0] * h[0] + h[1] * h[1] + h[2] * h[2]) >> 14
            c = _ONE - (t2 >> 1) + t2 * t2 // 393216  # 1 - t^2/2 + t^4/24
            f = _ONE - t2 // 6 + t2 * t2 // 1966080  # 1 - t^2/6 + t^4/120
            hx = (h[0] * f + 8192) >> 14
            hy = (h[1] * f + 8192) >> 14
            hz = (h[2] * f + 8192) >> 14
            qw, qx, qy, qz = q
            q[0] = (qw * c - qx * hx - qy * hy - qz * hz + 8192) >> 14
            q[1] = (qw * hx + qx * c + qy * hz - qz * hy + 8192) >> 14
            q[2] = (qw * hy - qx * hz + qy * c + qz * hx + 8192) >> 14
            q[3] = (qw * hz + qx * hy - qy * hx + qz * c + 8192) >> 14
            # Back to unit length: q * (3 - |q|^2) / 2.
            f = (805306368 - q[0] * q[0] - q[1] * q[1] - q[2] * q[2] - q[3] * q[3]) >> 15
            for k in range(4):
                q[k] = (q[k] * f + 8192) >> 14
        qw, qx, qy, qz = q
        r[0] = (qw * qw + qx * qx - qy * qy - qz * qz) >> 14
        r[1] = (qx * qy - qw * qz) >> 13
        r[2] = (qx * qz + qw * qy) >> 13
        r[3] = (qx * qy + qw * qz) >> 13
        r[4] = (qw * qw - qx * qx + qy * qy - qz * qz) >> 14
        r[5] = (qy * qz - qw * qx) >> 13
        r[6] = (qx * qz - qw * qy) >> 13
        r[7] = (qy * qz + qw * qx) >> 13
        r[8] = (qw * qw - qx * qx - qy * qy + qz * qz) >> 14
        for k in range(3):
            x = ring[p + k]
            a[k] = -16000 if x < -16000 else (16000 if x > 16000 else x)  # 16 g: products stay small
        for k in range(3):
            x = ((r[3 * k] * a[0] + r[3 * k + 1] * a[1] + r[3 * k + 2] * a[2] + 8192) >> 14) - (g0 if k == 2 else 0)
            if s > z0:
                nv = v[k] + e[k] + x
                pos[k] += v[k] + nv
                v[k] = nv
            e[k] = x
    # Ramp removal: 4 x (position - end velocity x duration / 2) = pos - v x slots.
    m = z1 - z0
    scale = 9.80665e-3 * dt * dt / 4  # [mg x slots^2] -> m
    return (pos[0] - v[0] * m) * scale, (pos[1] - v[1] * m) * scale, 2 * math.atan2(q[3], q[0])


def _wrap(angle):
    return (angle + math.pi) % (2 * math.pi) - math.pi
