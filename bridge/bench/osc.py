"""``avatar-bridge bench osc``: how fast an OSC change shows, and how many messages the daemon takes.

The daemon runs in this process as ``avatar-bridge run`` would: a live source (the
real carphone clip replayed on a 30 fps clock, like a camera: :class:`ClockedSource`)
-> the ``default`` preset (person alpha) -> a sink that stamps each frame's write time,
with the OSC surface on loopback.

1. **Latency.** ``/bridge/alpha/threshold`` is sent ``--messages`` times, alternating
   two values, at random moments within a frame. For each message: the time from
   sending it (loopback delivery takes microseconds) to the write of the first output
   frame processed with the new value, and how many frames began processing after the
   change reached the chain without showing it (0 = the next frame shows it; the goal
   is within one frame).
2. **Sustained rate.** A second process (so that it does not share this process's
   interpreter lock) sends valid messages (alternating thresholds, each answered by an
   ack) at each of ``--rates`` per second, in 1 s windows alternating with 1 s of
   quiet, for ``--seconds`` of sending; it counts the acks. For each rate: acks
   received / sent, and the stream's fps and dropped frames while sending against the
   quiet windows in between (adjacent windows: a shared machine's load drifts). The
   sustained rate is the highest rate with every message answered (>= 99.5 %) and the
   stream at >= 95 % of its quiet rate, at that rate and every lower one tried.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import socket
import statistics
import threading
import time
from typing import Any

import numpy as np

from bridge.frames import Frame
from bridge.transports.base import Sink, Source, StreamInfo

PARAM = "/bridge/alpha/threshold"
VALUES = (0.3, 0.7)


class ClockedSource(Source):
    """In-memory frames delivered on a fixed clock, as a camera does (a live source).

    Frame ``n`` is due at ``open() time + n / fps``; ``read`` sleeps until then. When the
    reader falls more than one frame behind, frames whose time has passed are skipped
    (a camera does not wait either), so the rate never drifts below ``fps``.

    Args:
        images: (H, W, 3) uint8 RGB frames, replayed in a loop.
        fps: frames per second.
    """

    live = True

    def __init__(self, images: list[np.ndarray], fps: float = 30.0) -> None:
        self.images, self.fps = images, fps
        self._t0 = 0.0
        self._n = 0

    def open(self) -> None:
        self._t0, self._n = time.perf_counter(), 0

    def read(self) -> Frame:
        now = time.perf_counter()
        due = self._t0 + self._n / self.fps
        if due > now:
            time.sleep(due - now)
        elif now - due > 1.0 / self.fps:
            self._n = int((now - self._t0) * self.fps)
        n = self._n
        self._n += 1
        return Frame(self.images[n % len(self.images)], n, time.perf_counter(), n / self.fps)


class StampSink(Sink):
    """Live sink that records ``(frame index, write time)`` of every frame (perf_counter s)."""

    live = True

    def __init__(self) -> None:
        self.writes: list[tuple[int, float]] = []

    def open(self, info: StreamInfo) -> None:
        pass

    def write(self, frame: Frame) -> None:
        self.writes.append((frame.index, time.perf_counter()))

    def fps_between(self, t0: float, t1: float) -> float:
        """Frames written per second in ``[t0, t1)``."""
        return sum(1 for _, t in self.writes if t0 <= t < t1) / (t1 - t0)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def blast(port: int, rate: int, seconds: float, window_s: float, inbox: Any, result: Any) -> None:
    """Send valid ``/bridge/alpha/threshold`` messages to 127.0.0.1:``port`` at ``rate``/s in
    windows of ``window_s`` seconds, each followed by as long a pause, for ``seconds`` of
    sending; count the acks on a reply port this process binds.

    Protocol: puts the reply port on ``result``, waits for "go" on ``inbox``, then puts
    ``(send windows, quiet windows, sent, acked)`` on ``result``; windows are
    ``(start, end)`` in ``time.perf_counter()`` seconds (the system's monotonic clock,
    comparable across processes on Linux). Runs in a child process (``multiprocessing``
    spawn), so that it does not share the daemon's interpreter lock.
    """
    from pythonosc.osc_message_builder import build_msg

    reply = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    reply.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    reply.bind(("127.0.0.1", 0))
    reply.settimeout(0.05)
    result.put(reply.getsockname()[1])
    if inbox.get() != "go":  # the parent says when the daemon replies here
        return
    acked = 0
    stop = threading.Event()

    def count() -> None:
        nonlocal acked
        while not stop.is_set():
            try:
                data = reply.recv(2048)
            except socket.timeout:
                continue
            if data.startswith(b"/bridge/ack/"):
                acked += 1

    counter = threading.Thread(target=count, daemon=True)
    counter.start()
    dgrams = [build_msg(PARAM, [v]).dgram for v in VALUES]
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target = ("127.0.0.1", port)
    per_window = int(rate * window_s)
    per_slice = max(1, rate // 500)  # 2 ms slices
    sends, quiets = [], []
    sent = 0
    for _ in range(max(1, round(seconds / window_s))):
        t0 = time.perf_counter()
        for i in range(per_window):
            if i % per_slice == 0:
                delay = t0 + i / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            out.sendto(dgrams[i & 1], target)
        sent += per_window
        t1 = time.perf_counter()
        time.sleep(window_s)
        sends.append((t0, t1))
        quiets.append((t1, time.perf_counter()))
    time.sleep(0.5)
    stop.set()
    counter.join(1.0)
    result.put((sends, quiets, sent, acked))


def _fps(writes: list[tuple[int, float]], windows: list[tuple[float, float]]) -> float:
    frames = sum(1 for _, t in writes for a, b in windows if a <= t < b)
    return frames / sum(b - a for a, b in windows)


def _count_in(samples: list[tuple[float, int]], windows: list[tuple[float, float]]) -> int:
    """Increase of a sampled counter ((time, value) pairs) within ``windows``."""
    total = 0
    for (t0, v0), (t1, v1) in zip(samples, samples[1:]):
        if any(a <= t1 <= b for a, b in windows):
            total += v1 - v0
    return total


class Bench:
    """The daemon under test (engine + OSC surface) and its instruments."""

    def __init__(self, fps: float) -> None:
        from bridge.chain import Chain
        from bridge.engine import Engine
        from bridge.osc.daemon import OSCService
        from bridge.presets import load_preset
        from bridge.samples import fetch_sample

        import av

        clip = fetch_sample("carphone", quiet=True)
        with av.open(str(clip)) as container:
            images = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        self.size = images[0].shape[1], images[0].shape[0]
        self.fps = fps
        self.sink = StampSink()
        chain = Chain.from_spec(load_preset("default").chain_spec())
        self.engine = Engine(ClockedSource(images, fps), chain, self.sink)
        self.processed: dict[int, tuple[float, float]] = {}  # index -> (start time, threshold used)
        self.arrivals: list[float] = []  # when each change was queued in the chain
        self._instrument(chain)
        self.reply_port = _free_port()
        self.service = OSCService(self.engine, "127.0.0.1", _free_port(), ("127.0.0.1", self.reply_port))

    def _instrument(self, chain: Any) -> None:
        """Record when each frame's processing starts and the threshold it used, and
        when each change reached the chain (the OSC handler's ``set_param``).

        The engine runs the chain stage by stage (``run_stage``, its assembly line) or
        whole (``process``); both are timed."""
        process, run_stage, set_param = chain.process, chain.run_stage, chain.set_param
        alpha = [s.name for s in chain.slots].index("alpha")

        def timed(frame: Frame) -> Frame:
            t = time.perf_counter()
            out = process(frame)
            self.processed[frame.index] = (t, chain.slots[alpha].runtime["threshold"])
            return out

        def timed_stage(index: int, job: Any) -> None:
            t = time.perf_counter()
            run_stage(index, job)  # applies the queued parameter changes first
            if index == alpha:
                self.processed[job.frame.index] = (t, chain.slots[alpha].runtime["threshold"])

        def arrived(stage: str, param: str, value: Any) -> Any:
            applied = set_param(stage, param, value)
            self.arrivals.append(time.perf_counter())
            return applied

        chain.process, chain.run_stage, chain.set_param = timed, timed_stage, arrived

    def start(self) -> None:
        self.service.start()
        self.engine.start()
        while len(self.sink.writes) < int(self.fps):  # one second of warm-up
            time.sleep(0.01)

    def stop(self) -> None:
        self.engine.stop()
        self.service()
        self.engine.join(5.0)

    def latency(self, messages: int) -> dict[str, Any]:
        """Send ``messages`` parameter changes; per message, ms to the first output frame showing it."""
        from pythonosc.udp_client import SimpleUDPClient

        client = SimpleUDPClient("127.0.0.1", self.service.port)
        rng = random.Random(0)
        sends = []
        for i in range(messages):
            time.sleep(rng.uniform(4, 6) / self.fps)  # 4-6 frames apart, at a random phase
            value = VALUES[i % 2]
            sends.append((time.perf_counter(), value))
            client.send_message(PARAM, value)
        time.sleep(10 / self.fps)
        writes = dict(self.sink.writes)
        ms, late = [], []
        for (t_send, value), t_arrival in zip(sends, self.arrivals):
            after = sorted((t, i, v) for i, (t, v) in self.processed.items() if t >= t_arrival)
            shown = next(((t, i) for t, i, v in after if v == value), None)
            if shown is None or shown[1] not in writes:
                continue
            ms.append((writes[shown[1]] - t_send) * 1000.0)
            late.append(sum(1 for t, i, v in after if t < shown[0]))
        frame_ms = 1000.0 / self.fps
        return {
            "messages": messages, "measured": len(ms), "frame_ms": round(frame_ms, 2),
            "median_ms": round(statistics.median(ms), 2), "p95_ms": round(float(np.percentile(ms, 95)), 2),
            "max_ms": round(max(ms), 2),
            "frames_processed_without_it_max": max(late),
            "within_one_frame": sum(1 for m in ms if m <= frame_ms) / len(ms),
            "stage_ms": round(self.engine.stats.stage_ms.get("alpha", 0.0), 2),
        }

    def rate(self, rate: int, seconds: float, window_s: float = 1.0) -> dict[str, Any]:
        """Messages at ``rate``/s from another process, in windows alternating with quiet
        ones (a shared machine's load drifts; adjacent windows compare fairly): the share
        answered, and the stream's fps and dropped frames while sending and in between."""
        ctx = multiprocessing.get_context("spawn")
        inbox, result = ctx.Queue(), ctx.Queue()
        child = ctx.Process(target=blast, args=(self.service.port, rate, seconds, window_s, inbox, result), daemon=True)
        child.start()
        port = result.get(timeout=60)
        self.service.replies.address = ("127.0.0.1", port)  # acks go to the child, which counts them
        samples: list[tuple[float, int]] = []
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.02):
                samples.append((time.perf_counter(), self.engine.stats.dropped))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        inbox.put("go")
        sends, quiets, sent, acked = result.get(timeout=2 * seconds + 60)
        done.set()
        sampler.join()
        child.join(5)
        self.service.replies.address = ("127.0.0.1", self.reply_port)
        writes = list(self.sink.writes)
        fps, quiet_fps = _fps(writes, sends), _fps(writes, quiets)
        return {"rate": rate, "sent": sent, "acked": acked, "answered": round(acked / sent, 4) if sent else 0.0,
                "fps": round(fps, 2), "quiet_fps": round(quiet_fps, 2), "fps_ratio": round(fps / quiet_fps, 3) if quiet_fps else 0.0,
                "dropped_sending": _count_in(samples, sends), "dropped_quiet": _count_in(samples, quiets)}


def run(args: argparse.Namespace) -> int:
    """``avatar-bridge bench osc``."""
    rates = [int(r) for r in args.rates.split(",") if r.strip()]
    bench = Bench(args.fps)
    bench.start()
    try:
        latency = bench.latency(args.messages)
        rows = [bench.rate(r, args.seconds) for r in rates]
    finally:
        bench.stop()
    sustained = 0  # the highest rate that, with every lower rate tried, kept both promises
    for r in sorted(rows, key=lambda r: r["rate"]):
        if r["answered"] < 0.995 or r["fps_ratio"] < 0.95:
            break
        sustained = r["rate"]
    result = {"machine": _machine(), "size": f"{bench.size[0]}x{bench.size[1]}", "fps": args.fps, "stage": "person-alpha (default preset)",
              "latency": latency, "rates": rows, "sustained_rate": sustained}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"OSC -> output frame, {result['size']} at {args.fps:g} fps through {result['stage']} on {result['machine']}")
    print(f"  {latency['measured']}/{latency['messages']} changes: median {latency['median_ms']} ms, p95 {latency['p95_ms']} ms, "
          f"max {latency['max_ms']} ms (one frame = {latency['frame_ms']} ms, alpha stage {latency['stage_ms']} ms); "
          f"frames processed after arrival without the change: at most {latency['frames_processed_without_it_max']}")
    print(f"  {'msg/s':>7} {'answered':>9} {'fps sending':>12} {'fps quiet':>10} {'dropped sending/quiet':>22}")
    for r in rows:
        print(f"  {r['rate']:>7} {r['answered'] * 100:>8.1f}% {r['fps']:>12.1f} {r['quiet_fps']:>10.1f} "
              f"{r['dropped_sending']:>14}/{r['dropped_quiet']}")
    if sustained:
        print(f"  sustained: {sustained} msg/s with every message answered and the stream at >= 95 % of its quiet rate")
    else:
        print("  sustained: none of these rates kept every message answered and the stream at >= 95 % of its quiet rate")
    return 0


def _machine() -> str:
    import os
    import platform

    return f"{platform.machine()} {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}"


def add_parser(sub: Any) -> None:
    """Add ``bench osc`` to the ``bench`` subparsers."""
    p = sub.add_parser("osc", help="OSC message -> output frame latency; message rate sustained while streaming")
    p.add_argument("--fps", type=float, default=30.0, help="source clock, frames per second (default 30)")
    p.add_argument("--messages", type=int, default=40, help="parameter changes timed for the latency (default 40)")
    p.add_argument("--rates", default="500,1000,2000,4000,8000", help="message rates to try, per second (comma-separated)")
    p.add_argument("--seconds", type=float, default=5.0, help="seconds of sending per rate, in 1 s windows (default 5)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)
