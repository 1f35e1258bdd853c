"""``avatar-bridge bench engine``: what the engine costs per frame, beyond the stages' own work.

A synthetic in-memory file source (not live: every frame is processed, in order)
feeds the passthrough stage and the ``null:`` sink, so nothing but the engine's own
per-frame path is measured: the hand-offs between the source, stage and sink threads,
the chain's tensor wrapping, and building the RGBA uint8 frame (on the daemon's uint8
path the passthrough stage hands the uint8 frame on, see :mod:`bridge.stages.base`).

Frames are not in cache, as each new frame of a stream is not: the source, the copy
and the chain cycle through distinct frames that together are larger than the CPU's
last-level cache (read from ``/sys/devices/system/cpu/cpu0/cache``, else
``getconf LEVEL3_CACHE_SIZE``, else 64 MiB; ``--llc-mib`` overrides). Each size
reports, in ms per frame:

* ``copy``: ``np.copyto`` of an (H, W, 3) uint8 frame into another preallocated frame,
  both cycling through the pool, the yardstick (one read and one write of a frame that
  is not in cache);
* ``copy_cached``: the same copy of one frame again and again (in cache), for reference;
* ``process``: :meth:`bridge.chain.Chain.process` called in a loop on one thread;
* ``engine``: wall time of :meth:`bridge.engine.Engine.run` over the frames, divided
  by the frame count (source, stage and sink threads; on a 2-core machine they share
  the cores);

and ``process`` and ``engine`` as ratios to ``copy``. Every number is the median of
``--repeats`` runs, so one run disturbed by another process does not decide it.
``--baseline-chain FILE`` measures another ``chain.py`` (an older commit's) interleaved
with the current one, for before/after ratios taken in the same run (a chain without
the assembly-line methods runs on one thread, ``Engine(pipelined=False)``).

``--line`` adds the assembly-line check of issue 12: stand-in stages sleeping
20/30/10 ms (pose, diffusion, alpha), frames per second of the engine against
1/max(stage) and against the same chain on one thread (1/sum), and the latency of each
with a live source (see :func:`measure_line`).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from bridge.bench import parse_sizes
from bridge.frames import Frame
from bridge.transports.base import Source

#: (width, height) measured by default, as the issue asks.
DEFAULT_SIZES = [(512, 512), (1920, 1080)]
#: last-level cache size assumed when the machine does not say, bytes
DEFAULT_LLC_BYTES = 64 * 2**20
#: the frame pool is this many times the last-level cache
POOL_FACTOR = 1.5


def last_level_cache_bytes(root: str = "/sys/devices/system/cpu/cpu0/cache") -> int:
    """Size in bytes of the CPU's last-level cache (the highest ``level`` under ``root``),
    else ``getconf LEVEL3_CACHE_SIZE``, else :data:`DEFAULT_LLC_BYTES` (64 MiB)."""
    best: tuple[int, int] | None = None
    for index in sorted(Path(root).glob("index*")):
        try:
            level = int((index / "level").read_text())
            text = (index / "size").read_text().strip().upper()
            size = int(text[:-1]) * {"K": 2**10, "M": 2**20, "G": 2**30}[text[-1]] if text[-1] in "KMG" else int(text)
        except (OSError, ValueError, KeyError):
            continue
        if best is None or level > best[0]:
            best = (level, size)
    if best is not None and best[1] > 0:
        return best[1]
    try:
        value = int(subprocess.run(["getconf", "LEVEL3_CACHE_SIZE"], capture_output=True, text=True, timeout=5).stdout.strip() or 0)
    except (OSError, ValueError, subprocess.SubprocessError):
        value = 0
    return value if value > 0 else DEFAULT_LLC_BYTES


class SyntheticSource(Source):
    """A non-live, in-memory source: ``frames`` frames cycling through ``images``
    ((H, W, 3) uint8 RGB each). Like a file: the engine reads it with back-pressure and
    processes every frame."""

    live = False

    def __init__(self, images: list[np.ndarray] | np.ndarray, frames: int, fps: float = 30.0) -> None:
        self.images = images
        self.frames = frames
        self.fps = fps
        self._index = 0

    def open(self) -> None:
        self._index = 0

    def read(self) -> Frame | None:
        if self._index >= self.frames:
            return None
        frame = Frame(self.images[self._index % len(self.images)], self._index, time.perf_counter(), self._index / self.fps)
        self._index += 1
        return frame


def synthetic_image(width: int, height: int) -> np.ndarray:
    """A deterministic (height, width, 3) uint8 RGB frame (gradients plus noise; content does not affect timing)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([(x * 255) // max(1, width - 1), (y * 255) // max(1, height - 1), (x + y) % 256], axis=-1)
    image = image + rng.integers(0, 16, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def frame_pool(width: int, height: int, cache_bytes: int) -> np.ndarray:
    """(N, height, width, 3) uint8: N distinct frames, together at least 1.5x ``cache_bytes``
    (and at least 2), so that cycling through them reads frames that are not in cache."""
    base = synthetic_image(width, height)
    count = max(2, math.ceil(POOL_FACTOR * cache_bytes / base.nbytes))
    pool = np.empty((count,) + base.shape, np.uint8)
    for i in range(count):
        np.add(base, np.uint8(i % 256), out=pool[i])  # wraps: a different frame each time
    return pool


def time_copy(pool: np.ndarray, loops: int) -> float:
    """Median ms of ``np.copyto`` of frame i into destination frame i, cycling through
    ``pool`` and through as many preallocated destinations (neither in cache)."""
    dst = np.empty_like(pool)
    dst.fill(0)  # touch the pages once, as a warm stream's allocator would have
    times = []
    for i in range(loops):
        k = i % len(pool)
        t0 = time.perf_counter()
        np.copyto(dst[k], pool[k])
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def time_copy_cached(image: np.ndarray, loops: int) -> float:
    """Median ms of ``np.copyto`` of the same frame into the same destination (in cache)."""
    dst = np.empty_like(image)
    np.copyto(dst, image)
    times = []
    for _ in range(loops):
        t0 = time.perf_counter()
        np.copyto(dst, image)
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def time_process(pool: np.ndarray, loops: int, chain_cls: Any = None) -> float:
    """Median ms of one :meth:`Chain.process` call with the passthrough stage, cycling through
    ``pool`` (``chain_cls``: default :class:`Chain`)."""
    from bridge.chain import Chain

    chain = (chain_cls or Chain).from_spec([("passthrough", {})])
    times = []
    for i in range(loops + 3):
        frame = Frame(pool[i % len(pool)], i, time.perf_counter(), None)
        t0 = time.perf_counter()
        chain.process(frame)
        if i >= 3:
            times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def time_engine(pool: np.ndarray, frames: int, chain_cls: Any = None) -> float:
    """ms per frame of a whole :class:`Engine` run: synthetic source (cycling through
    ``pool``) -> passthrough -> null sink.

    Raises:
        RuntimeError: the engine did not deliver every frame (a bug; the run is not a measurement).
    """
    from bridge.chain import Chain
    from bridge.engine import Engine
    from bridge.transports.null import NullSink

    sink = NullSink()
    chain = (chain_cls or Chain).from_spec([("passthrough", {})])
    engine = Engine(SyntheticSource(pool, frames), chain, sink, pipelined=hasattr(chain, "run_stage"))
    t0 = time.perf_counter()
    stats = engine.run()
    elapsed = time.perf_counter() - t0
    if stats.frames_out != frames or sink.frames != frames:
        raise RuntimeError(f"engine delivered {stats.frames_out} of {frames} frames")
    return elapsed * 1000.0 / frames


class LiveSyntheticSource(SyntheticSource):
    """A live (camera-like) synthetic source: a new frame every ``interval_s`` seconds;
    the engine drops frames it cannot take (latest frame wins)."""

    live = True

    def __init__(self, images: list[np.ndarray] | np.ndarray, frames: int, interval_s: float) -> None:
        super().__init__(images, frames, 1.0 / interval_s)
        self.interval_s = interval_s
        self._next = 0.0

    def read(self) -> Frame | None:
        now = time.perf_counter()
        self._next = max(self._next + self.interval_s, now) if self._next else now
        time.sleep(max(0.0, self._next - now))
        return super().read()


def measure_line(frames: int, delays_ms: tuple[float, ...] = (20.0, 30.0, 10.0), live_interval_ms: float = 5.0) -> dict[str, Any]:
    """The engine with stand-in stages sleeping ``delays_ms`` each, as an assembly line and
    on one thread (``Engine(pipelined=False)``).

    Returns ``{name}_fps`` (file source: every frame, the steady rate from the first frame
    out to the last) against 1/max(stage) and 1/sum(stages) (``{name}_vs_ideal``), and
    ``{name}_latency_ms``: the median capture-to-sink time of a live source sending a frame
    every ``live_interval_ms`` ms (faster than the line, so frames are dropped), for
    ``name`` in ``line`` and ``serial``.
    """
    from bridge.chain import Chain, StageSlot
    from bridge.engine import Engine
    from bridge.stages.passthrough import PassthroughConfig, PassthroughStage
    from bridge.transports.null import NullSink

    class OneWorker(PassthroughConfig):
        max_workers: ClassVar[int] = 1  # a stateful stage, like pose, avatar and alpha

    class Sleeper(PassthroughStage):
        def __init__(self, seconds: float) -> None:
            super().__init__()
            self.seconds = seconds

        def __call__(self, **kwargs: Any) -> Any:
            time.sleep(self.seconds)
            return super().__call__(**kwargs)

    class Timed(NullSink):
        def __init__(self) -> None:
            super().__init__()
            self.times: list[float] = []
            self.ages: list[float] = []

        def write(self, frame: Frame) -> None:
            super().write(frame)
            now = time.perf_counter()
            self.times.append(now)
            self.ages.append((now - frame.t_capture) * 1000.0)

    def chain() -> Chain:
        return Chain([StageSlot(f"s{i}", Sleeper(ms / 1000.0), OneWorker()) for i, ms in enumerate(delays_ms)])

    image = synthetic_image(64, 48)
    result: dict[str, Any] = {"stages_ms": list(delays_ms), "frames": frames, "live_interval_ms": live_interval_ms,
                              "ideal_line_fps": round(1000.0 / max(delays_ms), 2), "ideal_serial_fps": round(1000.0 / sum(delays_ms), 2)}
    for name, pipelined in (("line", True), ("serial", False)):
        sink = Timed()
        Engine(SyntheticSource([image], frames), chain(), sink, pipelined=pipelined).run()
        fps = (len(sink.times) - 1) / (sink.times[-1] - sink.times[0])
        result[f"{name}_fps"] = round(fps, 2)
        result[f"{name}_vs_ideal"] = round(fps / result[f"ideal_{name}_fps"], 3)
        live = Timed()
        live_frames = max(10, int(frames * max(delays_ms) / live_interval_ms))  # about as long as the file run
        Engine(LiveSyntheticSource([image], live_frames, live_interval_ms / 1000.0), chain(), live, pipelined=pipelined).run()
        ages = live.ages[3:] or live.ages
        result[f"{name}_latency_ms"] = round(statistics.median(ages), 1)
    return result


def load_chain_class(path: str) -> Any:
    """The ``Chain`` class of another ``chain.py`` (e.g. an older commit's), to compare in the same run.

    Raises:
        ConfigError: the file is missing or defines no ``Chain``.
    """
    import importlib.util

    from bridge.errors import ConfigError

    spec = importlib.util.spec_from_file_location("bridge_chain_baseline", path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"bench engine: cannot load {path!r}; give a chain.py, e.g. from git show HEAD~1:bridge/chain.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    try:
        spec.loader.exec_module(module)
    except OSError as exc:
        raise ConfigError(f"bench engine: cannot read {path!r} ({exc.strerror})") from None
    if not hasattr(module, "Chain"):
        raise ConfigError(f"bench engine: {path!r} defines no Chain class")
    return module.Chain


def measure(sizes: list[tuple[int, int]], frames: int, repeats: int, baseline: Any = None,
            cache_bytes: int | None = None) -> list[dict[str, Any]]:
    """Per size: ``copy_ms``, ``copy_cached_ms``, ``process_ms``, ``engine_ms`` (medians over
    ``repeats`` runs) and the ratios of the last two to ``copy_ms``, plus ``pool_frames`` and
    ``cache_mib`` (the frame pool and the cache it exceeds).

    With a ``baseline`` Chain class, also ``baseline_process_ms``/``baseline_engine_ms``
    and their ratios, measured interleaved with the current chain in the same run.
    """
    cache = cache_bytes or last_level_cache_bytes()
    results = []
    for width, height in sizes:
        pool = frame_pool(width, height, cache)
        runs: dict[str, list[float]] = {}
        for _ in range(repeats):
            runs.setdefault("copy", []).append(time_copy(pool, max(frames, len(pool))))
            runs.setdefault("copy_cached", []).append(time_copy_cached(pool[0], frames))
            for prefix, cls in (("", None), ("baseline_", baseline)) if baseline is not None else (("", None),):
                runs.setdefault(prefix + "process", []).append(time_process(pool, frames, cls))
                runs.setdefault(prefix + "engine", []).append(time_engine(pool, frames, cls))
        copy = statistics.median(runs.pop("copy"))
        result: dict[str, Any] = {"width": width, "height": height, "frames": frames, "repeats": repeats,
                                  "pool_frames": len(pool), "cache_mib": round(cache / 2**20, 1),
                                  "copy_ms": round(copy, 3), "copy_cached_ms": round(statistics.median(runs.pop("copy_cached")), 3)}
        for name, values in runs.items():
            ms = statistics.median(values)
            result[f"{name}_ms"] = round(ms, 3)
            result[f"{name}_ratio"] = round(ms / copy, 2) if copy > 0 else None
        results.append(result)
        del pool
    return results


def run(args: argparse.Namespace) -> int:
    """``avatar-bridge bench engine``: print the table (or JSON with --json); exit code 0."""
    from bridge.errors import ConfigError

    if args.frames < 1 or args.repeats < 1:
        raise ConfigError("bench engine: --frames and --repeats must be at least 1")
    if args.llc_mib is not None and args.llc_mib <= 0:
        raise ConfigError("bench engine: --llc-mib must be more than 0")
    sizes = parse_sizes(args.sizes, "bench engine") if args.sizes else DEFAULT_SIZES
    baseline = load_chain_class(args.baseline_chain) if args.baseline_chain else None
    cache = int(args.llc_mib * 2**20) if args.llc_mib is not None else None
    results: Any = measure(sizes, args.frames, args.repeats, baseline, cache)
    line = measure_line(max(10, min(args.frames, 100))) if args.line else None
    if args.json:
        print(json.dumps({"sizes": results, "line": line} if line is not None else results))
        return 0
    r0 = results[0]
    print(f"engine overhead, passthrough stage, synthetic source -> null sink, {args.frames} frames cycling through "
          f"{POOL_FACTOR}x the {r0['cache_mib']} MiB last-level cache, median of {args.repeats} runs "
          f"(ms per frame; x = ratio to np.copyto of a frame not in cache):")
    print(f"  {'size':>10s} {'copy':>8s} {'(cached)':>8s} {'process':>16s} {'engine':>16s}")
    for r in results:
        print(f"  {r['width']:>4d}x{r['height']:<5d} {r['copy_ms']:8.3f} {r['copy_cached_ms']:8.3f} "
              f"{r['process_ms']:8.3f} ({r['process_ratio']:5.1f}x) {r['engine_ms']:8.3f} ({r['engine_ratio']:5.1f}x)")
        if "baseline_process_ms" in r:
            print(f"  {'baseline':>10s} {'':8s} {'':8s} {r['baseline_process_ms']:8.3f} ({r['baseline_process_ratio']:5.1f}x)"
                  f" {r['baseline_engine_ms']:8.3f} ({r['baseline_engine_ratio']:5.1f}x)   <- {args.baseline_chain}")
    if line is not None:
        print(f"assembly line, stand-in stages sleeping {'/'.join(f'{v:g}' for v in line['stages_ms'])} ms, {line['frames']} frames:")
        print(f"  line   {line['line_fps']:6.2f} fps = {line['line_vs_ideal']:.3f} x 1/max(stage) ({line['ideal_line_fps']} fps), "
              f"live latency {line['line_latency_ms']:.1f} ms (median, a frame every {line['live_interval_ms']:g} ms)")
        print(f"  serial {line['serial_fps']:6.2f} fps = {line['serial_vs_ideal']:.3f} x 1/sum(stages) ({line['ideal_serial_fps']} fps), "
              f"live latency {line['serial_latency_ms']:.1f} ms")
    return 0


def add_parser(sub: Any) -> None:
    """Add ``bench engine`` to the ``bench`` subparsers."""
    parser = sub.add_parser("engine", help="engine overhead per frame (passthrough stage) vs a plain copy of the frame")
    parser.add_argument("--sizes", default="", metavar="WxH,...", help="frame sizes (default 512x512,1920x1080)")
    parser.add_argument("--frames", type=int, default=200, metavar="N", help="frames per run (default 200)")
    parser.add_argument("--repeats", type=int, default=3, metavar="N", help="runs per number, median taken (default 3)")
    parser.add_argument("--llc-mib", type=float, default=None, metavar="MIB",
                        help="last-level cache size to exceed with distinct frames (default: read from the machine)")
    parser.add_argument("--baseline-chain", default="", metavar="FILE",
                        help="also measure the Chain of another chain.py in the same run (before/after an optimisation)")
    parser.add_argument("--line", action="store_true",
                        help="also measure the assembly line with stand-in stages of 20/30/10 ms against 1/max and 1/sum")
    parser.add_argument("--json", action="store_true", help="print a JSON list, one object per size "
                                                            "(with --line: {\"sizes\": [...], \"line\": {...}})")
    parser.set_defaults(func=run)
