"""SAMPLES: batches of raw samples, one packet or many at a time, without a Python loop per sample.

A SAMPLES payload is ``first_index u32 ‖ count u8 ‖ n_pressure u8 ‖ imu u8 ‖ reserved``
then ``count`` records of ``n_pressure`` u16 pressure counts and, with ``imu``, six i16
(``ax ay az`` in mg, ``gx gy gz`` in 0.1 deg/s). :class:`Samples` is one packet;
:func:`decode_sample_batches` and :func:`encode_samples` turn many into numpy arrays
and back (recordings, replay). Physical units: :mod:`insole.quantise`.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from insole.errors import ProtocolError
from insole.model import I16Array, U16Array, U32Array
from insole.protocol.constants import (
    HEADER_LEN,
    IMU_AXES,
    MAX_PACKET_LEN,
    MAX_PRESSURE_CHANNELS,
    MAX_SAMPLES_PER_PACKET,
    NA_U16,
    SAMPLES_HEADER_LEN,
    U32_WRAP,
    PacketType,
)
from insole.protocol.header import bad_length, bad_value, encode_packet, truncated

_SAMPLES_HEAD = struct.Struct("<IBBBB")  # first_index, count, n_pressure, imu, reserved



def sample_record_len(n_pressure: int, imu: int | bool) -> int:
    return 2 * n_pressure + 12 * int(bool(imu))


def max_samples_per_packet(n_pressure: int, imu: int | bool) -> int:
    """Most samples one SAMPLES packet can carry within 1024 bytes (at most 255)."""
    record = sample_record_len(n_pressure, imu)
    if record == 0:
        raise ProtocolError("a sample record needs pressure channels or an IMU")
    return min(MAX_SAMPLES_PER_PACKET, (MAX_PACKET_LEN - HEADER_LEN - SAMPLES_HEADER_LEN) // record)


def _check_samples_head(count: int, n_pressure: int, imu: int, reserved: int, payload_len: int) -> None:
    """Structural checks shared by single and bulk decoding; offsets are payload offsets."""
    if count == 0:
        raise bad_value("SAMPLES count is 0; expected 1..255", 4)
    if n_pressure > MAX_PRESSURE_CHANNELS:
        raise bad_value(f"SAMPLES n_pressure = {n_pressure}; at most {MAX_PRESSURE_CHANNELS}", 5)
    if imu > 1:
        raise bad_value(f"SAMPLES imu = {imu}; expected 0 or 1", 6)
    if n_pressure == 0 and imu == 0:
        raise bad_value("SAMPLES with neither pressure channels nor IMU", 5)
    if reserved:
        raise bad_value(f"SAMPLES reserved byte = {reserved}; must be 0", 7)
    expected = SAMPLES_HEADER_LEN + count * sample_record_len(n_pressure, imu)
    if payload_len != expected:
        make = truncated if payload_len < expected else bad_length
        raise make(
            f"SAMPLES of {count} samples × {n_pressure} pressure + imu {imu} needs "
            f"{expected} payload bytes, got {payload_len}"
        )


@dataclass(frozen=True, eq=False)
class Samples:
    """One batch of samples in protocol counts (sentinels kept; physical units: insole.quantise).

    ``pressure_counts`` is (count, n_pressure) uint16, ``imu_raw`` is (count, 6) int16
    in the order ax ay az (mg) gx gy gz (0.1 deg/s), or None without IMU.
    """

    first_index: int
    pressure_counts: U16Array
    imu_raw: I16Array | None

    TYPE: ClassVar[PacketType] = PacketType.SAMPLES

    def __post_init__(self) -> None:
        # Normalise dtypes so that equality and encoding are predictable.
        pressure = np.asarray(self.pressure_counts, dtype=np.uint16)
        if pressure.ndim != 2:
            raise ValueError(f"pressure_counts must be (count, n_pressure), got shape {pressure.shape}")
        object.__setattr__(self, "pressure_counts", pressure)
        if self.imu_raw is not None:
            imu = np.asarray(self.imu_raw, dtype=np.int16)
            if imu.ndim != 2 or imu.shape[1] != IMU_AXES or len(imu) != len(pressure):
                raise ValueError(f"imu_raw must be ({len(pressure)}, 6), got shape {imu.shape}")
            object.__setattr__(self, "imu_raw", imu)

    @property
    def count(self) -> int:
        return len(self.imu_raw) if self.imu_raw is not None else len(self.pressure_counts)

    @property
    def n_pressure(self) -> int:
        return int(self.pressure_counts.shape[1])

    @property
    def imu(self) -> int:
        return int(self.imu_raw is not None)

    @property
    def indices(self) -> npt.NDArray[np.int64]:
        return self.first_index + np.arange(self.count, dtype=np.int64)

    def payload(self) -> bytes:
        payloads = encode_sample_payloads(self.first_index, self.pressure_counts, self.imu_raw)
        if len(payloads) != 1:
            raise ProtocolError(
                f"{self.count} samples do not fit one SAMPLES packet "
                f"(at most {max_samples_per_packet(self.n_pressure, self.imu)}); use encode_samples()"
            )
        return payloads[0]

    def encode(self, seq: int = 0, time_ms: int = 0) -> bytes:
        return encode_packet(self.TYPE, seq, time_ms, self.payload())

    @classmethod
    def decode(cls, payload: bytes) -> Samples:
        indices, pressure, imu = decode_sample_batches([payload])
        return cls(int(indices[0]), pressure, imu)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Samples):
            return NotImplemented
        imu_equal = (self.imu_raw is None and other.imu_raw is None) or (
            self.imu_raw is not None and other.imu_raw is not None and np.array_equal(self.imu_raw, other.imu_raw)
        )
        return (
            self.first_index == other.first_index
            and np.array_equal(self.pressure_counts, other.pressure_counts)
            and imu_equal
        )

    __hash__ = None  # type: ignore[assignment]  # unhashable, as arrays compared by value must be


def decode_sample_batches(
    payloads: Sequence[bytes], *, n_pressure: int | None = None, imu: int | bool | None = None
) -> tuple[U32Array, U16Array, I16Array | None]:
    """Decode many SAMPLES payloads (packet bytes after the 8-byte header) at once.

    Returns (sample indices u32 (n,), pressure counts uint16 (n, P), IMU raw int16 (n, 6)
    or None). All batches must share one ``n_pressure``/``imu`` (checked against the
    arguments when given; they also set the shape of an empty result). The records are
    decoded with one ``np.frombuffer`` over all batches: no Python loop per sample.
    """
    counts: list[int] = []
    firsts: list[int] = []
    records: list[bytes] = []
    shape: tuple[int, int] | None = None if n_pressure is None or imu is None else (n_pressure, int(bool(imu)))
    for payload in payloads:
        if len(payload) < SAMPLES_HEADER_LEN:
            raise truncated(f"SAMPLES payload of {len(payload)} bytes is shorter than its 8-byte head")
        first_index, count, batch_pressure, batch_imu, reserved = _SAMPLES_HEAD.unpack_from(payload)
        _check_samples_head(count, batch_pressure, batch_imu, reserved, len(payload))
        if shape is None:
            shape = (batch_pressure, batch_imu)
        elif shape != (batch_pressure, batch_imu):
            raise bad_value(
                f"SAMPLES batch with n_pressure {batch_pressure}, imu {batch_imu} differs from "
                f"the stream's n_pressure {shape[0]}, imu {shape[1]}",
                5 if batch_pressure != shape[0] else 6,
            )
        counts.append(count)
        firsts.append(first_index)
        records.append(payload[SAMPLES_HEADER_LEN:])
    n_p, has_imu = shape if shape is not None else (0, 0)
    words_per_record = n_p + IMU_AXES * has_imu
    words = np.frombuffer(b"".join(records), dtype="<u2").reshape(-1, max(words_per_record, 1))
    if words_per_record == 0:
        words = words[:, :0]
    pressure = words[:, :n_p].astype(np.uint16)
    imu_raw = words[:, n_p:].view("<i2").astype(np.int16) if has_imu else None
    count_array = np.asarray(counts, dtype=np.int64)
    batch_starts = np.cumsum(count_array) - count_array
    offsets = np.arange(int(count_array.sum()), dtype=np.int64) - np.repeat(batch_starts, count_array)
    indices = (np.repeat(np.asarray(firsts, dtype=np.int64), count_array) + offsets) % U32_WRAP
    return indices.astype(np.uint32), pressure, imu_raw


def _sample_words(
    pressure_counts: npt.ArrayLike | None, imu_raw: npt.ArrayLike | None
) -> tuple[npt.NDArray[np.uint16], int, int]:
    """Interleave pressure and IMU into one (n, P+6) little-endian u16 array of records."""
    pressure = None if pressure_counts is None else np.asarray(pressure_counts)
    imu = None if imu_raw is None else np.asarray(imu_raw)
    if pressure is not None and pressure.size == 0 and pressure.ndim < 2:
        pressure = None
    if pressure is not None:
        if pressure.ndim != 2 or pressure.shape[1] > MAX_PRESSURE_CHANNELS:
            raise ProtocolError(f"pressure counts must be (n, 0..{MAX_PRESSURE_CHANNELS}), got shape {pressure.shape}")
        if pressure.size and (pressure.min() < 0 or pressure.max() > NA_U16):
            raise ProtocolError("pressure counts must fit u16 (use pressure_to_counts to quantise)")
    if imu is not None:
        if imu.ndim != 2 or imu.shape[1] != IMU_AXES:
            raise ProtocolError(f"IMU raw values must be (n, 6), got shape {imu.shape}")
        if imu.size and (imu.min() < -32768 or imu.max() > 32767):
            raise ProtocolError("IMU raw values must fit i16 (use imu_to_raw to quantise)")
    if pressure is not None and imu is not None and len(pressure) != len(imu):
        raise ProtocolError(f"{len(pressure)} pressure rows but {len(imu)} IMU rows")
    n_p = 0 if pressure is None else pressure.shape[1]
    has_imu = int(imu is not None)
    if n_p == 0 and not has_imu:
        raise ProtocolError("samples need pressure channels or an IMU")
    n = len(imu) if imu is not None else len(pressure) if pressure is not None else 0
    words = np.empty((n, n_p + IMU_AXES * has_imu), dtype="<u2")
    if pressure is not None and n_p:
        words[:, :n_p] = pressure
    if has_imu:
        words[:, n_p:] = np.asarray(imu, dtype=np.int16).view(np.uint16)
    return words, n_p, has_imu


def encode_sample_payloads(
    first_index: int,
    pressure_counts: npt.ArrayLike | None,
    imu_raw: npt.ArrayLike | None,
    *,
    max_count: int | None = None,
) -> list[bytes]:
    """SAMPLES payloads for consecutive samples from ``first_index``, each batch as full as allowed."""
    words, n_p, has_imu = _sample_words(pressure_counts, imu_raw)
    limit = max_samples_per_packet(n_p, has_imu)
    per_batch = limit if max_count is None else min(limit, max_count)
    if per_batch < 1:
        raise ProtocolError(f"max_count must be at least 1, got {max_count}")
    if first_index < 0:
        raise ProtocolError(f"first_index must not be negative, got {first_index}")
    data = words.tobytes()
    record = sample_record_len(n_p, has_imu)
    payloads = []
    for start in range(0, len(words), per_batch):
        count = min(per_batch, len(words) - start)
        head = _SAMPLES_HEAD.pack((first_index + start) % U32_WRAP, count, n_p, has_imu, 0)
        payloads.append(head + data[start * record : (start + count) * record])
    return payloads


def encode_samples(
    first_index: int,
    pressure_counts: npt.ArrayLike | None,
    imu_raw: npt.ArrayLike | None,
    *,
    seq_start: int = 0,
    rate_hz: float | None = None,
    time_ms: int = 0,
    max_count: int | None = None,
) -> list[bytes]:
    """SAMPLES packets (header + payload) for consecutive samples, split to fit 1024 bytes.

    Packets are numbered ``seq_start``, ``seq_start + 1``, … (wrapping). With ``rate_hz``
    each packet's ``time_ms`` is ``time_ms`` plus the time just after its last sample
    (when a device would send it); without it every packet carries ``time_ms``.
    """
    payloads = encode_sample_payloads(first_index, pressure_counts, imu_raw, max_count=max_count)
    packets = []
    sent = 0
    for i, payload in enumerate(payloads):
        sent += payload[4]
        stamp = time_ms if rate_hz is None else time_ms + round(1000.0 * (first_index + sent) / rate_hz)
        packets.append(encode_packet(PacketType.SAMPLES, seq_start + i, stamp, payload))
    return packets

