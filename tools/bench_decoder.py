"""Throughput of the host's frame decoder (insole.protocol.FrameDecoder), in MB/s.

    .venv/bin/python tools/bench_decoder.py [--mb 2] [--chunk 4096]

Valid frames (a recording's mix of SAMPLES, STEP, CUE and STATUS) against the garbage
that used to be slow or could be: megabytes without a 0x00, zero bytes only, short junk
runs, frames with a bad CRC, and runs of the longest frame length whose bytes chain like
COBS code bytes (every start a candidate tail) or look like packet headers. Each is fed
in ``--chunk``-byte pieces, as a serial link or a file reader does; the best of three
runs is printed, with the ratio of the slowest garbage to valid frames. Numbers, not
assertions: tests/test_protocol.py checks the work is linear by counting it instead.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from insole.protocol import (
    Cue,
    FrameDecoder,
    Status,
    Step,
    encode_samples,
    frame,
    max_encoded_frame_len,
)


def valid_frames(size: int, rng: np.random.Generator) -> bytes:
    step = Step(1523, 1587, 640, 410, 850, 1, 3, 41000, 118, 1380, 1210, 12)
    cue = Cue(12, 1561, 16012, 16012, 180, 1850, 500, 300, 1, 0, 1, 60, 453, 9)
    status = Status(0, 3, 1, 0, 1, 8, 1, 87, 10000, 3987, 12, 6000, 123456, 2, 5)
    pieces: list[bytes] = []
    total = 0
    seq = 0
    while total < size:
        pressure = rng.integers(0, 4000, (36, 8))
        imu = rng.integers(-2000, 2000, (36, 6))
        for packet in encode_samples(36 * seq, pressure, imu, seq_start=seq):
            pieces.append(frame(packet))
        pieces += [frame(step.encode(seq, seq)), frame(cue.encode(seq, seq)), frame(status.encode(seq, seq))]
        total += sum(len(p) for p in pieces[-4:])
        seq += 1
    return b"".join(pieces)


def bad_crc_frames(size: int, rng: np.random.Generator) -> bytes:
    damaged = bytearray(valid_frames(size, rng))
    delimiters = np.flatnonzero(np.frombuffer(bytes(damaged), dtype=np.uint8) == 0)
    for end in delimiters:  # the last byte before each 0x00 is CRC (or its code byte)
        if end and damaged[end - 1] != 0x01:
            damaged[end - 1] ^= 0x01 if damaged[end - 1] != 0x01 else 0x03
    return bytes(damaged)


def repeat(unit: bytes, size: int) -> bytes:
    return unit * (size // len(unit) + 1)


GARBAGE: dict[str, Callable[[int, np.random.Generator], bytes]] = {
    "no 0x00 at all (random)": lambda size, rng: rng.integers(1, 256, size, dtype=np.uint8).tobytes(),
    "0x00 only": lambda size, rng: bytes(size),
    "short junk runs (4 bytes + 0x00)": lambda size, rng: repeat(b"\x05\x01\x02\x03\x00", size),
    "random junk runs of 1..30 bytes": lambda size, rng: b"".join(
        rng.integers(1, 256, int(n), dtype=np.uint8).tobytes() + b"\x00" for n in rng.integers(1, 31, size // 16)
    ),
    "junk runs of 20 x 0x01": lambda size, rng: repeat(b"\x01" * 20 + b"\x00", size),
    "junk runs of 20 header-like bytes": lambda size, rng: repeat(b"\x03\x01\x02" * 7 + b"\x00", size),
    "frames with a bad CRC": bad_crc_frames,
    "longest runs of 0x01": lambda size, rng: repeat(b"\x01" * max_encoded_frame_len() + b"\x00", size),
    "longest runs of 0x02": lambda size, rng: repeat(b"\x02" * max_encoded_frame_len() + b"\x00", size),
    "longest runs of header-like bytes": lambda size, rng: repeat(
        (b"\x03\x01\x02" * 400)[: max_encoded_frame_len()] + b"\x00", size
    ),
    "over-long runs (4 KB of 0x01)": lambda size, rng: repeat(b"\x01" * 4096 + b"\x00", size),
}


def throughput(data: bytes, chunk: int) -> tuple[float, FrameDecoder]:
    best = float("inf")
    decoder = FrameDecoder()
    for _ in range(3):
        decoder = FrameDecoder()
        started = time.perf_counter()
        for at in range(0, len(data), chunk):
            decoder.feed(data[at : at + chunk])
        best = min(best, time.perf_counter() - started)
    return len(data) / best / 1e6, decoder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=2.0, help="megabytes per input (default 2)")
    parser.add_argument("--chunk", type=int, default=65536, help="bytes per feed() call (default 65536)")
    args = parser.parse_args(argv)
    size = int(args.mb * 1e6)
    rng = np.random.default_rng(2024)
    valid_mbs, decoder = throughput(valid_frames(size, rng), args.chunk)
    print(f"{'valid frames':38s} {valid_mbs:8.1f} MB/s  ({decoder.frames} frames, {decoder.bad_frames} bad)")
    slowest = ("", float("inf"))
    for name, make in GARBAGE.items():
        data = make(size, rng)[:size]
        mbs, decoder = throughput(data, args.chunk)
        work = decoder.checked_bytes / len(data)
        print(f"{name:38s} {mbs:8.1f} MB/s  ({decoder.bad_frames} bad, {work:.2f} bytes decoded per byte fed)")
        if mbs < slowest[1]:
            slowest = (name, mbs)
    print(f"slowest garbage: {slowest[0]}, {slowest[1]:.1f} MB/s = {slowest[1] / valid_mbs:.2f} x valid frames")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
