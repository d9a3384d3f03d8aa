"""Simulated insoles for the demo, `--simulate` and the tests: the firmware on the unix
port, its live sensors replaying given streams, reached over a pty or the emulated radio."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from insole.emulation.board import BLE_HEAP, SimulatedBoard, write_sample_file
from insole.errors import ToolError
from insole.layouts import layout_packet
from insole.link import InsoleLink, SerialLink
from insole.link.ble import open_ble_insoles, run_on_radio
from insole.model import FootStream
from insole.protocol import Layout
from insole.quantise import rate_hz_to_chz, stream_counts

if TYPE_CHECKING:  # bumble is imported only where the radio is used
    from insole.emulation.peripheral import BridgedPeripheral


@dataclass
class SimulatedInsoles:
    """Simulated insoles whose live sensors replay given streams, ready to stream."""

    links: list[tuple[str, InsoleLink]]
    layouts: dict[str, Layout]
    pressure_scales: list[float]


def open_simulated_insoles(
    stack: ExitStack,
    streams: Sequence[FootStream],
    *,
    ble: bool = False,
    env: dict[str, dict[str, str]] | None = None,
    log_dir: Path | None = None,
    connect: bool = True,
    connection_interval_ms: float | None = None,
) -> SimulatedInsoles:
    """One simulated insole per stream (closed by ``stack``), each answering on its link.

    Over a pty (serial) by default; with ``ble`` over the emulated radio: bumble virtual
    controllers, the firmware's GATT server through the unix port's `bluetooth`
    stand-in, and the host's normal bleak client through the bumble backend, its
    connections at ``connection_interval_ms`` (the backend's default if None). ``env``
    adds environment variables per side (e.g. ``INSOLE_CLOCK_PPM``). With ``connect``
    False (BLE only) the insoles run and advertise but no link is opened.
    """
    work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="insole-sim-")))
    out = SimulatedInsoles([], {}, [])
    samples_files = []
    for stream in streams:
        samples_file = work_dir / f"{stream.side}.ismp"
        out.layouts[stream.side], pressure_scale = write_insole_samples(stream, samples_file)
        samples_files.append(samples_file)
        out.pressure_scales.append(pressure_scale)
    if ble:
        out.links.extend(_open_ble_insoles(stack, streams, samples_files, out.layouts, env or {}, log_dir, connect,
                                           connection_interval_ms))
        return out
    for stream, samples_file in zip(streams, samples_files, strict=True):
        board = stack.enter_context(
            SimulatedBoard(side=stream.side, samples_file=samples_file, env=(env or {}).get(stream.side))
        )
        out.links.append((stream.side, stack.enter_context(SerialLink(board.port))))
    for _, link in out.links:  # the firmware's first answer also waits out its start-up
        link.ping(timeout_s=10)
    return out


# Sample log of a simulated insole on the emulated radio: the ESP32-S3's, 160
# notifications (~12 s at 104 Hz with 8 cells + IMU), enough for a backfill at a phone's
# 50 ms connection interval (boards/esp32s3/board.py), within the BLE simulation's heap.
SAMPLE_LOG_BYTES_BLE = 39680


def write_insole_samples(stream: FootStream, path: Path) -> tuple[Layout, float]:
    """The stream as the simulated insole's sample file: its layout packet and pressure
    scale (kPa per count)."""
    counts = stream_counts(stream)
    write_sample_file(path, rate_hz_to_chz(stream.rate_hz), counts.pressure, counts.imu)
    return layout_packet(stream.layout, stream.side, stream.n_pressure), counts.pressure_scale


def simulated_ble_insole(
    transport: str,
    side: str,
    samples_file: Path,
    layout: Layout,
    *,
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
    settings_dir: Path | None = None,
    **peripheral_options: Any,
) -> BridgedPeripheral:
    """The insole's firmware on the unix port, its sensors replaying ``samples_file``,
    its radio on the bumble HCI ``transport`` (a controller of the emulated radio, or
    any bumble transport: ``tcp-server:HOST:PORT``, ``usb:0``). Not started.
    ``peripheral_options`` go to :class:`BridgedPeripheral` (``address``,
    ``start_timeout_s``, ``inherit_stderr``)."""
    from insole.emulation.peripheral import BridgedPeripheral

    return BridgedPeripheral(
        transport,
        side=side,
        env={
            "INSOLE_SIM_SAMPLES": str(samples_file),
            "INSOLE_SAMPLE_LOG_BYTES": str(SAMPLE_LOG_BYTES_BLE),
            "INSOLE_SIM_LAYOUT": ",".join(str(v) for xy in zip(layout.x_mm, layout.y_mm, strict=True) for v in xy),
            **(env or {}),
        },
        capture_stdout=False,
        heap=BLE_HEAP,
        log_path=log_path,
        settings_dir=settings_dir,
        **peripheral_options,
    )


def _open_ble_insoles(
    stack: ExitStack,
    streams: Sequence[FootStream],
    samples_files: Sequence[Path],
    layouts: dict[str, Layout],
    env: dict[str, dict[str, str]],
    log_dir: Path | None,
    connect: bool,
    connection_interval_ms: float | None,
) -> Sequence[tuple[str, InsoleLink]]:
    try:
        from insole.emulation import bumble_backend
    except ImportError as exc:
        raise ToolError(
            f"the emulated BLE radio needs bumble ({exc})", advice="pip install 'insole[emulation]', or use a serial link"
        ) from exc
    from insole.emulation.bumble_backend import BumbleClient, BumbleScanner
    from insole.emulation.radio import VirtualRadio

    radio = stack.enter_context(VirtualRadio(n_controllers=1 + len(streams)))
    bumble_backend.use_transport(radio.transports[0])
    bumble_backend.use_connection_interval(connection_interval_ms)
    stack.callback(bumble_backend.use_connection_interval, None)
    # Unwinds after the links and insoles: the host's radio leaves its controller last.
    stack.callback(lambda: run_on_radio(bumble_backend.shutdown(), timeout_s=10.0))
    for i, (stream, samples_file) in enumerate(zip(streams, samples_files, strict=True)):
        stack.enter_context(
            simulated_ble_insole(
                radio.transports[1 + i], stream.side, samples_file, layouts[stream.side],
                env=env.get(stream.side),
                log_path=None if log_dir is None else log_dir / f"firmware-{stream.side}.log",
            )
        )
    if not connect:
        return []
    return open_ble_insoles(
        stack, [s.side for s in streams], scanner_backend=BumbleScanner, client_backend=BumbleClient
    )
