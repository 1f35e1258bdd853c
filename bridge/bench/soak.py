"""``avatar-bridge bench soak``: run the daemon under a show's worth of abuse for N minutes.

Run it before a show, on the machine of the show. The daemon runs in this process as
``avatar-bridge run`` would: a live source (the real carphone clip on a 30 fps clock, like
a camera) that vanishes for a few seconds every ``--outage-every`` seconds and comes back
(:class:`VanishingSource`), presets that need no model weights (person alpha; pose ->
alpha; pose; passthrough -> pose -> alpha, made in a temporary presets folder; or
``--presets`` of your own), a sink that stamps each frame, the OSC surface on loopback.

A second process (:func:`drive`, so it does not share the daemon's interpreter lock)
sends, over UDP to the OSC port:

* parameter changes at controller rates: 60 a second, a fader's worth
  (``/bridge/alpha/threshold``, ``/bridge/alpha/softness``);
* a preset switch every 5 s, and every 60 s a flood: 2 s of 25 switches a second (a MIDI
  button held down, a slider wired to ``/bridge/preset``);
* bad messages, 5 a second: out of range, wrong type, wrong count, unknown address, a
  preset that does not exist; and 1 a second of random bytes (not OSC at all).

Every ``--interval`` seconds it prints the resident memory (RSS), the frames per second
written, the errors answered, the switches coalesced and the source restarts. At the end
it judges the goal of the issue "On stage, under abuse": RSS never more than 10 % above its
level after the warm-up (the first row at or after 2 minutes: every preset built and the
first flood over; memory handed back when a smaller preset runs is no leak), the stream never stopped (no gap between written frames over 2 s, but for
gaps that overlap an outage of the source), every refused message and every dropped
switch answered with one ``/bridge/error`` (random bytes are not OSC and are counted as
``malformed`` instead).
Exit code 0 when the goal holds, 1 when it does not.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bridge.bench.osc import ClockedSource, StampSink, _free_port
from bridge.errors import SourceLost, TransportError
from bridge.frames import Frame

#: The presets the soak switches among when none are given: no model weights needed.
PRESETS = {
    "soak-alpha": "stages:\n  - stage: alpha\n",
    "soak-pose-alpha": "stages:\n  - stage: pose\n  - stage: alpha\n",
    "soak-pose": "stages:\n  - stage: pose\n",
    "soak-pass-pose-alpha": "stages:\n  - stage: passthrough\n  - stage: pose\n  - stage: alpha\n",
}
#: Bad messages (address, args); each must be answered by one ``/bridge/error``.
BAD = [
    ("/bridge/alpha/threshold", [7.5]),  # out of range
    ("/bridge/alpha/threshold", ["high"]),  # wrong type
    ("/bridge/alpha/softness", []),  # wrong count
    ("/bridge/nothing/here", [1]),  # unknown address
    ("/bridge/preset", ["no-such-preset"]),  # unknown preset
]
#: The longest gap between two written frames (s), outside the source's outages, that
#: still counts as a stream that did not stop.
MAX_GAP_S = 2.0
#: RSS may grow this much (fraction) above its level after the warm-up.
RSS_TOLERANCE = 0.10
#: The warm-up: the RSS row at or after this many seconds is the reference level (every preset
#: has been built once and the first flood is over).
WARMUP_S = 120.0


def rss_mb() -> float:
    """Resident memory of this process in MiB (``/proc/self/statm``; the peak from
    ``resource`` where there is no /proc)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / (2**20 if sys.platform == "darwin" else 2**10)


class VanishingSource(ClockedSource):
    """A :class:`ClockedSource` that is gone for ``outage_s`` every ``every_s`` seconds:
    ``read`` raises :class:`~bridge.errors.SourceLost` and ``open`` fails until it returns
    (a camera unplugged, a Spout sender closed and reopened).

    Attributes:
        outages: (start, end) perf_counter seconds of each outage so far.
    """

    def __init__(self, images: list[Any], fps: float, every_s: float, outage_s: float) -> None:
        super().__init__(images, fps)
        self.every_s, self.outage_s = every_s, outage_s
        self.outages: list[tuple[float, float]] = []
        self._start = time.perf_counter()

    def _gone(self) -> bool:
        if self.every_s <= 0:
            return False
        phase = (time.perf_counter() - self._start) % self.every_s
        return phase >= self.every_s - self.outage_s

    def open(self) -> None:
        if self._gone():
            raise TransportError("soak: the test camera is unplugged")
        super().open()

    def read(self) -> Frame:
        if self._gone():
            now = time.perf_counter()
            if not self.outages or self.outages[-1][1] < now - self.outage_s:
                self.outages.append((now, now + self.outage_s))
            raise SourceLost("soak: the test camera vanished")
        return super().read()


def drive(port: int, seconds: float, presets: list[str], inbox: Any, result: Any, seed: int = 0) -> None:
    """The abuser (runs in a child process): send the mix described in the module docstring
    to 127.0.0.1:``port`` for ``seconds``; count the replies on a reply port of its own.

    Protocol: puts its reply port on ``result``, waits for "go" on ``inbox``, then, at the
    end, puts a dict of counts: ``sent_params``, ``sent_switches``, ``sent_bad``,
    ``sent_garbage``, ``errors`` (``/bridge/error`` lines received), ``acks``.
    """
    from pythonosc.osc_message_builder import build_msg

    rng = random.Random(seed)
    reply = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    reply.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    reply.bind(("127.0.0.1", 0))
    reply.settimeout(0.05)
    result.put(reply.getsockname()[1])
    if inbox.get() != "go":
        return
    counts = {"sent_params": 0, "sent_switches": 0, "sent_bad": 0, "sent_garbage": 0, "errors": 0, "acks": 0}
    stop = threading.Event()

    def listen() -> None:
        while not stop.is_set():
            try:
                data = reply.recv(4096)
            except socket.timeout:
                continue
            if data.startswith(b"/bridge/error"):
                counts["errors"] += 1
            elif data.startswith(b"/bridge/ack/"):
                counts["acks"] += 1

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target = ("127.0.0.1", port)
    bad_dgrams = [build_msg(a, args).dgram for a, args in BAD]
    fader = [build_msg(address, [round(v, 3)]).dgram for address, scale in (("/bridge/alpha/threshold", 1.0), ("/bridge/alpha/softness", 0.25))
             for v in (scale * (0.3 + 0.4 * k / 59) for k in range(60))]
    t0 = time.perf_counter()
    tick = 1.0 / 60.0
    n = 0
    while True:
        now = time.perf_counter() - t0
        if now >= seconds:
            break
        out.sendto(fader[n % len(fader)], target)  # a fader: two parameters, 60 changes a second
        counts["sent_params"] += 1
        flooding = int(now) % 60 in (30, 31)
        if n % 300 == 0 or (flooding and n % 2 == 0):  # every 5 s; 30 a second in a flood
            out.sendto(build_msg("/bridge/preset", [rng.choice(presets)]).dgram, target)
            counts["sent_switches"] += 1
        if n % 12 == 0:  # 5 bad messages a second
            out.sendto(bad_dgrams[(n // 12) % len(bad_dgrams)], target)
            counts["sent_bad"] += 1
        if n % 60 == 30:  # random bytes, once a second
            out.sendto(rng.randbytes(rng.randint(1, 200)), target)
            counts["sent_garbage"] += 1
        n += 1
        delay = t0 + n * tick - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    time.sleep(2.0)
    stop.set()
    listener.join(1.0)
    result.put(counts)


def soak(minutes: float, interval_s: float, outage_every_s: float, outage_s: float, presets: list[str] | None,
         printer: Any = print) -> dict[str, Any]:
    """Run the soak; returns the rows (one per interval) and the verdict (see the module docstring)."""
    seconds = max(10.0, minutes * 60.0)
    saved = os.environ.get("AVATAR_BRIDGE_PRESETS")
    try:
        return _soak(seconds, minutes, interval_s, outage_every_s, outage_s, presets, printer)
    finally:  # the soak's own presets folder is gone afterwards
        if saved is None:
            os.environ.pop("AVATAR_BRIDGE_PRESETS", None)
        else:
            os.environ["AVATAR_BRIDGE_PRESETS"] = saved


def _soak(seconds: float, minutes: float, interval_s: float, outage_every_s: float, outage_s: float,
          presets: list[str] | None, printer: Any) -> dict[str, Any]:
    from bridge.chain import Chain
    from bridge.engine import Engine
    from bridge.osc.daemon import OSCService
    from bridge.presets import load_preset
    from bridge.samples import read_clip

    with tempfile.TemporaryDirectory() as folder:
        if not presets:
            for name, text in PRESETS.items():
                Path(folder, f"{name}.yaml").write_text(text)
            os.environ["AVATAR_BRIDGE_PRESETS"] = folder
            presets = list(PRESETS)
        for name in presets:
            load_preset(name)  # a bad --presets name fails here, before anything starts
        images = read_clip("carphone")
        source = VanishingSource(images, 30.0, outage_every_s, outage_s)
        sink = StampSink()
        engine = Engine(source, Chain.from_spec(load_preset(presets[0]).chain_spec()), sink, retry_s=0.25)
        ctx = multiprocessing.get_context("spawn")
        inbox, result = ctx.Queue(), ctx.Queue()
        port = _free_port()
        child = ctx.Process(target=drive, args=(port, seconds, presets, inbox, result), daemon=True)
        child.start()
        reply_port = result.get(timeout=120.0)
        service = OSCService(engine, "127.0.0.1", port, ("127.0.0.1", reply_port))
        service.start()
        engine.start()
        inbox.put("go")
        rows: list[dict[str, Any]] = []
        t_start = time.perf_counter()
        last_frames, last_t = len(sink.writes), t_start
        try:
            while time.perf_counter() - t_start < seconds:
                time.sleep(min(interval_s, max(0.0, seconds - (time.perf_counter() - t_start))))
                now = time.perf_counter()
                frames = len(sink.writes)
                row = {"t_s": round(now - t_start, 1), "rss_mb": round(rss_mb(), 1),
                       "fps": round((frames - last_frames) / max(1e-9, now - last_t), 1),
                       "frames_out": frames, "coalesced": service.controls.coalesced,
                       "refused": service.controls.refused, "malformed": service.server.counters.malformed,
                       "source_restarts": engine.stats.source_restarts, "state": engine.stats.state}
                rows.append(row)
                printer(f"  {row['t_s']:8.1f} s  RSS {row['rss_mb']:8.1f} MB  {row['fps']:6.1f} fps  refused {row['refused']:6d}  "
                        f"coalesced {row['coalesced']:5d}  malformed {row['malformed']:5d}  source restarts {row['source_restarts']:3d}  {row['state']}")
                last_frames, last_t = frames, now
            counts = result.get(timeout=60.0)
        finally:
            engine.stop()
            service()
            engine.join(5.0)
            child.join(5.0)
    refused, coalesced = service.controls.refused, service.controls.coalesced
    writes = [t for _, t in sink.writes]
    # a gap that overlaps an outage is the source's (reopening waits out its back-off too)
    gaps = [(b - a, a) for a, b in zip(writes, writes[1:]) if not any(a <= ob and b >= oa for oa, ob in source.outages)]
    max_gap, gap_at = max(gaps, default=(float("inf"), 0.0))
    # the warm-up: every preset built once and the first flood (at 30 s of each minute) over
    settled = [r for r in rows if r["t_s"] >= WARMUP_S] or rows
    warm = settled[0]["rss_mb"] if settled else float("nan")
    peak = max((r["rss_mb"] for r in rows), default=float("nan"))
    final = rows[-1]["rss_mb"] if rows else float("nan")
    verdict = {
        "rss_after_warmup_mb": warm, "rss_peak_mb": peak, "rss_final_mb": final,
        "rss_min_mb": min((r["rss_mb"] for r in rows), default=float("nan")),
        # growth is what a leak looks like; memory handed back (a smaller preset) is not
        "rss_within_10pct": all(r["rss_mb"] <= (1.0 + RSS_TOLERANCE) * warm for r in settled),
        "max_gap_s": round(max_gap, 3), "max_gap_at_s": round(gap_at - t_start, 1) if gaps else None, "stream_never_stopped": max_gap <= MAX_GAP_S,
        "bad_sent": counts["sent_bad"], "refused": refused, "dropped_switches": coalesced, "errors_received": counts["errors"],
        # every refused message (the bad ones among them) and every dropped switch got its one /bridge/error line
        "every_bad_answered": refused >= counts["sent_bad"] and counts["errors"] == refused + coalesced,
        "garbage_sent": counts["sent_garbage"], "malformed_counted": rows[-1]["malformed"] if rows else 0,
        "median_fps": round(statistics.median(r["fps"] for r in rows), 1) if rows else 0.0,
        "outages": len(source.outages), "counts": counts,
    }
    verdict["ok"] = verdict["rss_within_10pct"] and verdict["stream_never_stopped"] and verdict["every_bad_answered"]
    return {"minutes": minutes, "presets": presets, "rows": rows, "verdict": verdict}


def run(args: argparse.Namespace) -> int:
    from bridge.errors import ConfigError

    if args.minutes <= 0 or args.interval <= 0:
        raise ConfigError("bench soak: --minutes and --interval must be > 0")
    presets = [p for p in args.presets.split(",") if p] if args.presets else None
    import logging

    logging.getLogger("bridge").setLevel(logging.WARNING)  # a line per applied switch would drown the table
    print(f"soak: {args.minutes} min, a row every {args.interval:g} s (the row at 2 min is the warm-up level)")
    out = soak(args.minutes, args.interval, args.outage_every, args.outage, presets,
               printer=(lambda *a: None) if args.json else print)
    v = out["verdict"]
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"RSS after warm-up {v['rss_after_warmup_mb']} MB, peak {v['rss_peak_mb']} MB, lowest {v['rss_min_mb']} MB, "
              f"final {v['rss_final_mb']} MB: {'never' if v['rss_within_10pct'] else 'MORE than'} 10 % above the warm-up level")
        print(f"longest gap between frames outside the {v['outages']} source outages: {v['max_gap_s']} s at {v['max_gap_at_s']} s "
              f"({'the stream never stopped' if v['stream_never_stopped'] else 'the stream STOPPED'})")
        print(f"/bridge/error lines received {v['errors_received']} for {v['refused']} refused messages ({v['bad_sent']} bad ones sent) "
              f"and {v['dropped_switches']} dropped switches; random datagrams counted as malformed: {v['malformed_counted']} of {v['garbage_sent']}")
        print("goal met" if v["ok"] else "goal NOT met")
    return 0 if v["ok"] else 1


def add_parser(sub: Any) -> None:
    """Add ``bench soak`` to the ``bench`` subparsers."""
    p = sub.add_parser("soak", help="run the daemon under abuse for N minutes: RSS, fps and errors over time")
    p.add_argument("--minutes", type=float, default=30.0, help="how long (default 30)")
    p.add_argument("--interval", type=float, default=60.0, help="seconds between rows (default 60)")
    p.add_argument("--presets", default="", help="comma-separated preset names to switch among (default: four that need no weights)")
    p.add_argument("--outage-every", type=float, default=120.0, help="the source vanishes every this many seconds (0 = never)")
    p.add_argument("--outage", type=float, default=3.0, help="for this many seconds (default 3)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)
