"""``avatar-bridge bench ndi``: NDI® round trip through the daemon on loopback.

A stand-in for TouchDesigner runs on two threads: an NDI sender (like an NDI Out TOP, no
alpha) sends frames at a fixed rate, each stamped with its number in a band of black and
white blocks along the top, and an NDI receiver (like an NDI In TOP) reads the daemon's
RGBA output. The daemon runs ``ndi:`` source -> a passthrough stage (or ``--preset``'s
stages) -> sink. Per frame
number: the time the stand-in sent it and the time it came back (``time.perf_counter()``),
so the latency is the whole round trip: encode, NDI in, decode, stage, encode, NDI out,
decode. All of it shares one process (and this machine's cores): with extra IPs on one
machine, NDI only finds the senders of the first NDI process (the one that holds TCP port
5960), so a stand-in in a second process could not see the daemon's sender.

The same run with a file sink (``null:``, ``images:``) stamps the time each frame was
written, for comparison: that is the one-way trip NDI in -> stage -> sink. ``direct:`` is
NDI alone: the stand-in's receiver reads the stand-in's sender, no daemon.

Loopback traffic (bytes on ``lo`` from ``/proc/net/dev``, Linux) gives the NDI High
Bandwidth bitrate of the streams at these sizes and rates: the file-sink run carries the
input stream only, the NDI-sink run both (the counter is machine-wide: other programs'
loopback traffic adds to it).

Exposes :class:`LoopbackSender` and :class:`RGBAReceiver`, the stand-in's two halves,
which the NDI tests use as well.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from bridge.frames import Frame
from bridge.transports.base import Sink, StreamInfo

#: bits of the frame number stamped along the top of each frame, and the band height (px)
CODE_BITS = 12
CODE_BAND = 16


def stamp_code(image: np.ndarray, number: int) -> None:
    """Write ``number`` (mod 2**CODE_BITS) into the top ``CODE_BAND`` rows of ``image`` in place.

    Each bit is a block of the band, all 0 (bit clear) or 255 (bit set) in every colour
    channel; flat blocks survive SpeedHQ's lossy coding. ``image``: (H, W, C) uint8, C >= 3,
    W >= 16 * CODE_BITS.
    """
    width = image.shape[1] // CODE_BITS
    for bit in range(CODE_BITS):
        image[:CODE_BAND, bit * width:(bit + 1) * width, :3] = 255 if (number >> bit) & 1 else 0


def read_code(image: np.ndarray) -> int | None:
    """The number :func:`stamp_code` wrote into ``image`` ((H, W, C) uint8), or None if unreadable."""
    width = image.shape[1] // CODE_BITS
    centre = CODE_BAND // 2
    number = 0
    for bit in range(CODE_BITS):
        patch = image[centre - 2:centre + 2, bit * width + width // 4:(bit + 1) * width - width // 4, :3]
        level = float(patch.mean())
        if 64 < level < 192:
            return None
        number |= (level >= 128) << bit
    return number


def _ndi() -> Any:
    from bridge.transports.ndi import load_cyndilib

    return load_cyndilib()


class LoopbackSender:
    """An NDI sender on a thread, sending ``images`` in a loop at ``fps``, optionally numbered.

    Args:
        name: NDI sender name.
        images: one (H, W, 3) uint8 RGB image or a list of them (sent as RGBX, no alpha,
            like an NDI Out TOP without alpha), or (H, W, 4) uint8 RGBA (sent with alpha);
            a list is sent in order, round and round.
        fps: frames per second (paced by the thread, not by the NDI clock).
        stamp: stamp the frame number into each frame (see :func:`stamp_code`).

    ``sent`` maps frame number (mod 2**CODE_BITS) -> perf_counter() seconds just before
    the send; ``count`` counts frames sent; ``send_ms`` the time of each (synchronous)
    send, which is mostly the SpeedHQ encode.
    """

    def __init__(self, name: str, images: np.ndarray | list[np.ndarray], fps: float = 30.0, stamp: bool = True) -> None:
        self.name, self.fps, self.stamp = name, fps, stamp
        self.images = [images] if isinstance(images, np.ndarray) else list(images)
        height, width, channels = self.images[0].shape
        self._buf = np.empty((height, width, 4), np.uint8)
        self._buf[..., 3] = 255
        self._alpha = channels == 4
        self.sent: dict[int, float] = {}
        self.count = 0
        self.send_ms: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sender: Any = None

    def start(self) -> LoopbackSender:
        """Open the NDI sender and start sending; returns self."""
        lib = _ndi()
        height, width = self._buf.shape[:2]
        frame = lib.VideoSendFrame()
        frame.set_resolution(width, height)
        frame.set_frame_rate(Fraction(self.fps).limit_denominator(1001))
        frame.set_fourcc(lib.FourCC.RGBA if self._alpha else lib.FourCC.RGBX)
        self._sender = lib.Sender(self.name, clock_video=False)
        self._sender.set_video_frame(frame)
        self._sender.open()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"ndi-sender-{self.name}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        flat = self._buf.reshape(-1)
        period = 1.0 / self.fps
        next_t = time.perf_counter()
        while not self._stop.is_set():
            image = self.images[self.count % len(self.images)]
            self._buf[..., : image.shape[2]] = image
            if self.stamp:
                stamp_code(self._buf, self.count)
            t_send = self.sent[self.count % (1 << CODE_BITS)] = time.perf_counter()
            self._sender.write_video(flat)
            self.send_ms.append((time.perf_counter() - t_send) * 1000.0)
            self.count += 1
            next_t += period
            delay = next_t - time.perf_counter()
            if delay > 0:
                self._stop.wait(delay)
            else:
                next_t = time.perf_counter()

    def stop(self) -> None:
        """Stop sending and close the sender (receivers see the source go away)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._sender is not None:
            self._sender.close()
            self._sender = None


class RGBAReceiver:
    """An NDI receiver on a thread that keeps the RGBA frames of the sender ``name``.

    Like TouchDesigner's NDI In TOP: asks for RGBA, reads through the NDI frame-sync
    (newest frame; polled every ms). ``frames`` holds the last ``keep`` frames as
    (perf_counter() seconds, (H, W, 4) uint8 RGBA); ``arrivals`` maps the stamped frame
    number -> first arrival time (when ``decode`` is on); ``count`` counts new frames.
    """

    def __init__(self, name: str, keep: int = 8, decode: bool = True) -> None:
        self.name, self.keep, self.decode = name, keep, decode
        self.frames: list[tuple[float, np.ndarray]] = []
        self.arrivals: dict[int, float] = {}
        self.count = 0
        self.connected_to: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> RGBAReceiver:
        """Start looking for the sender and receiving; returns self."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"ndi-receiver-{self.name}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        from bridge.transports.ndi import match_source

        lib = _ndi()
        finder = lib.Finder()  # polled with update_sources(), no finder thread (see NDISource)
        receiver = lib.Receiver(color_format=lib.RecvColorFormat.RGBX_RGBA, bandwidth=lib.RecvBandwidth.highest,
                                recv_name="avatar-bridge-test")
        video = lib.VideoFrameSync()
        receiver.frame_sync.set_video_frame(video)
        stamp = None
        try:
            while not self._stop.is_set():
                if self.connected_to is None:
                    name = match_source(finder.update_sources(), self.name)
                    source = finder.get_source(name) if name else None
                    if source is None:
                        time.sleep(0.02)
                        continue
                    receiver.set_source(source)
                    self.connected_to = name
                receiver.frame_sync.capture_video()
                if video.xres > 0 and (video.get_timestamp_posix(), video.get_timecode_posix()) != stamp:
                    now = time.perf_counter()
                    stamp = (video.get_timestamp_posix(), video.get_timecode_posix())
                    width, height, stride = video.xres, video.yres, video.get_line_stride()
                    flat = video.get_array()
                    rgba = flat[: height * stride].reshape(height, stride)[:, : width * 4].reshape(height, width, 4)
                    if video.get_fourcc() in (lib.FourCC.BGRA, lib.FourCC.BGRX):
                        rgba = rgba[..., [2, 1, 0, 3]]
                    with self._lock:
                        self.count += 1
                        self.frames.append((now, rgba))
                        del self.frames[: -self.keep]
                        if self.decode:
                            code = read_code(rgba)
                            if code is not None:
                                self.arrivals.setdefault(code, now)
                time.sleep(0.001)
        finally:
            receiver.disconnect()

    def latest(self) -> tuple[float, np.ndarray] | None:
        """The newest (time, RGBA) frame, or None."""
        with self._lock:
            return self.frames[-1] if self.frames else None

    def stop(self) -> None:
        """Stop and release the receiver."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


class _TimedSink(Sink):
    """Wraps a file sink; records when each stamped frame number was written."""

    def __init__(self, inner: Sink) -> None:
        self.inner, self.live = inner, inner.live
        self.arrivals: dict[int, float] = {}

    def open(self, info: StreamInfo) -> None:
        self.inner.open(info)

    def write(self, frame: Frame) -> None:
        self.inner.write(frame)
        code = read_code(frame.image)
        if code is not None:
            self.arrivals.setdefault(code, time.perf_counter())

    def close(self) -> None:
        self.inner.close()


def _loopback_rx_bytes() -> int | None:
    try:
        for line in Path("/proc/net/dev").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name.strip() == "lo":
                return int(rest.split()[0])
    except OSError:
        return None
    return None


def _test_image(width: int, height: int) -> np.ndarray:
    """Real content at (height, width): scikit-image's camera.png (a man with a camera) if
    cached or downloadable, else a textured synthetic pattern. (H, W, 3) uint8 RGB."""
    import cv2

    try:
        from bridge.samples import fetch_sample

        grey = cv2.imread(str(fetch_sample("camera", quiet=True)), cv2.IMREAD_GRAYSCALE)
    except Exception:
        grey = None
    if grey is None:
        yy, xx = np.mgrid[0:512, 0:512]
        grey = ((np.sin(xx / 7.0) * np.cos(yy / 11.0) + 1) * 100 + (xx ^ yy) % 56).astype(np.uint8)
    grey = cv2.resize(grey, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32)
    tint = np.array([1.0, 0.85, 0.7], np.float32)  # a warm tint: some chroma, as in a real picture
    return np.ascontiguousarray((grey[..., None] * tint).astype(np.uint8))


def run_case(width: int, height: int, sink_uri: str, seconds: float = 6.0, fps: float = 30.0, warmup: float = 2.0,
             preset: str | None = None) -> dict[str, Any]:
    """One measured run: stand-in sender -> daemon (ndi: source, stages) -> ``sink_uri``.

    The stages are a passthrough stage (transport cost only), or ``preset``'s.

    ``sink_uri`` is ``ndi:`` (the stand-in receives it back), ``null:`` or ``images:``
    (a temporary folder), or ``direct:``: no daemon, the stand-in's receiver reads its own
    sender (NDI alone: encode, send, decode). Returns fps out, round-trip / one-way latency (median and 95th
    percentile, ms), frames sent/back, the engine's stats and loopback Mbit/s.

    Raises:
        BridgeError: NDI is unavailable or no frame came through within 15 s.
    """
    from bridge.chain import Chain
    from bridge.engine import Engine
    from bridge.errors import TransportError
    from bridge.presets import load_preset
    from bridge.transports import open_sink
    from bridge.transports.ndi import NDISink, NDISource, configure_discovery

    configure_discovery("127.0.0.1")
    tag = f"{width}x{height}-{os.getpid()}-{sink_uri.split(':')[0]}"
    in_name, out_name = f"bench-in-{tag}", f"bench-out-{tag}"
    sender = LoopbackSender(in_name, _test_image(width, height), fps).start()
    direct = sink_uri == "direct:"
    receiver = RGBAReceiver(in_name if direct else out_name, keep=1).start() if sink_uri in ("ndi:", "direct:") else None
    with tempfile.TemporaryDirectory() as tmp:
        if direct:
            engine, sink = None, None
        else:
            sink = NDISink(out_name) if sink_uri == "ndi:" else _TimedSink(open_sink(f"images:{tmp}" if sink_uri == "images:" else sink_uri))
            spec = load_preset(preset).chain_spec() if preset else [("passthrough", {})]
            engine = Engine(NDISource(in_name, timeout_s=5.0), Chain.from_spec(spec, device="cpu"), sink)
            engine.start()
        frames_out = (lambda: receiver.count) if engine is None else (lambda: engine.stats.frames_out)
        try:
            deadline = time.perf_counter() + 15
            while frames_out() == 0 or (receiver is not None and receiver.count == 0):
                if time.perf_counter() > deadline or (engine is not None and not engine.running):
                    raise TransportError(f"bench ndi: no frame came through in 15 s ({engine and engine.stats.last_error})")
                time.sleep(0.05)
            time.sleep(warmup)
            t0, lo0, out0 = time.perf_counter(), _loopback_rx_bytes(), frames_out()
            time.sleep(seconds)
            t1, lo1, out1 = time.perf_counter(), _loopback_rx_bytes(), frames_out()
            stats = engine.stats.snapshot() if engine is not None else {"latency_ms": None, "stage_ms": {}, "dropped": 0}
        finally:
            if engine is not None:
                engine.stop()
                engine.join(10)
            sender.stop()
            if receiver is not None:
                receiver.stop()
    sent = dict(sender.sent)
    arrivals = receiver.arrivals if receiver is not None else sink.arrivals
    window = {code: t for code, t in arrivals.items() if t0 <= t <= t1 and code in sent and t >= sent[code]}
    latencies = sorted((t - sent[code]) * 1000.0 for code, t in window.items())
    sent_in_window = sum(1 for t in sent.values() if t0 - 0.05 <= t <= t1 - 0.05)
    return {
        "size": f"{width}x{height}",
        "sink": sink_uri,
        "stages": preset or "passthrough",
        "fps_in": fps,
        "fps_out": round(len(window) / (t1 - t0), 2),
        "engine_fps_out": round((out1 - out0) / (t1 - t0), 2),
        "engine_frames_out": out1 - out0,
        "latency_ms_median": round(statistics.median(latencies), 2) if latencies else None,
        "latency_ms_p95": round(latencies[int(0.95 * (len(latencies) - 1))], 2) if latencies else None,
        "frames_sent": sent_in_window,
        "frames_back": len(window),
        "engine_latency_ms": stats["latency_ms"],
        "standin_send_ms_median": round(statistics.median(sender.send_ms), 2) if sender.send_ms else None,
        "stage_ms": stats["stage_ms"],
        "dropped": stats["dropped"],
        "loopback_kbit": round((lo1 - lo0) * 8 / 1e3, 1) if lo0 is not None and lo1 is not None else None,
        "loopback_mbps": round((lo1 - lo0) * 8 / (t1 - t0) / 1e6, 1) if lo0 is not None and lo1 is not None else None,
        # NDI bits per frame sent by the stand-in (in stream, plus the out stream for ndi:)
        "loopback_kbit_per_frame": round((lo1 - lo0) * 8 / 1e3 / max(1, sent_in_window), 1) if lo0 is not None and lo1 is not None else None,
    }


def add_parser(sub: Any) -> None:
    """``avatar-bridge bench ndi [--sizes 512x512,1280x720] [--sinks ndi:,null:,images:] [--json]``."""
    p = sub.add_parser("ndi", help="NDI round-trip latency and fps on loopback, against file sinks")
    p.add_argument("--sizes", default="512x512,1280x720", help="comma list of WxH (default 512x512,1280x720)")
    p.add_argument("--sinks", default="direct:,ndi:,null:,images:",
                   help="comma list of cases (default direct:,ndi:,null:,images:; direct: = NDI alone, no daemon)")
    p.add_argument("--fps", type=float, default=30.0, help="rate the stand-in sends at (default 30)")
    p.add_argument("--seconds", type=float, default=6.0, help="measured seconds per run (default 6)")
    p.add_argument("--preset", default=None, metavar="NAME", help="run a preset's stages instead of a passthrough stage")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=cmd_bench_ndi)


def cmd_bench_ndi(args: argparse.Namespace) -> int:
    """Run every size x sink case and print a table (or JSON)."""
    from bridge.bench import parse_sizes
    from bridge.cli import UsageError

    cases = []
    for width, height in parse_sizes(args.sizes, "bench ndi"):
        size = f"{width}x{height}"
        if width < 16 * CODE_BITS or height < 2 * CODE_BAND:
            raise UsageError(f"--sizes: {size} is too small; at least {16 * CODE_BITS}x{2 * CODE_BAND}")
        for sink in args.sinks.split(","):
            if sink not in ("direct:", "ndi:", "null:", "images:"):
                raise UsageError(f"--sinks: {sink!r} is not one of direct:, ndi:, null:, images:")
            cases.append((width, height, sink))
    results = []
    for width, height, sink in cases:
        result = run_case(width, height, sink, seconds=args.seconds, fps=args.fps, preset=args.preset)
        results.append(result)
        if not args.json:
            print(f"{result['size']:>9} -> {sink:8s} fps out {result['fps_out']:5.1f} (in {args.fps:g}), "
                  f"latency median {result['latency_ms_median']} ms, p95 {result['latency_ms_p95']} ms, "
                  f"back {result['frames_back']}/{result['frames_sent']}, engine {result['engine_latency_ms']} ms, "
                  f"stages {sum(result['stage_ms'].values()):.1f} ms, loopback {result['loopback_mbps']} Mbit/s "
                  f"({result['loopback_kbit_per_frame']} kbit per frame sent)",
                  flush=True)
    streams = stream_bitrates(results)
    if not args.json:
        for row in streams:
            print(f"{row['size']:>9}: NDI stream in (RGB, no alpha) {row['in_kbit_per_frame']} kbit/frame, "
                  f"out (RGBA) {row['out_kbit_per_frame']} kbit/frame -> at 30 fps in {row['in_mbps_30fps']} / "
                  f"out {row['out_mbps_30fps']} Mbit/s, at 60 fps about twice that")
    if args.json:
        print(json.dumps({"machine": f"{os.cpu_count()} CPUs, {sys.platform}", "results": results, "streams": streams}, indent=2))
    return 0


def stream_bitrates(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per size: NDI bits per frame of the input stream (from the ``null:`` run, which only
    carries it) and of the daemon's RGBA output (the ``ndi:`` run's traffic minus its input
    stream, per frame the daemon sent), and the Mbit/s that makes at 30 fps."""
    rows = []
    for size in dict.fromkeys(r["size"] for r in results):
        by_sink = {r["sink"]: r for r in results if r["size"] == size}
        null, ndi = by_sink.get("null:"), by_sink.get("ndi:")
        if not null or not ndi or not null.get("loopback_kbit") or not ndi.get("loopback_kbit") or not ndi["engine_frames_out"]:
            continue
        in_kbit = null["loopback_kbit"] / max(1, null["frames_sent"])
        out_kbit = (ndi["loopback_kbit"] - in_kbit * ndi["frames_sent"]) / ndi["engine_frames_out"]
        rows.append({"size": size, "in_kbit_per_frame": round(in_kbit, 1), "out_kbit_per_frame": round(out_kbit, 1),
                     "in_mbps_30fps": round(in_kbit * 30 / 1e3, 1), "out_mbps_30fps": round(out_kbit * 30 / 1e3, 1)})
    return rows
