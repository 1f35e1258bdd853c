"""``avatar-bridge bench engine``: what the engine costs per frame, beyond the stages' own work.

A synthetic in-memory file source (not live: every frame is processed, in order)
feeds the passthrough stage and the ``null:`` sink, so nothing but the engine's own
per-frame path is measured: the hand-offs between the source, stage and sink threads,
the chain's tensor wrapping, the stage contract's uint8 -> float32 [0,1] conversion
and the conversion back to an RGBA uint8 frame. Each size reports, in ms per frame:

* ``copy``: ``np.copyto`` of the same (H, W, 3) uint8 frame into a preallocated array,
  the yardstick (one read and one write of the frame);
* ``process``: :meth:`bridge.chain.Chain.process` called in a loop on one thread;
* ``engine``: wall time of :meth:`bridge.engine.Engine.run` over the frames, divided
  by the frame count (three threads; on a 2-core machine they share the cores);

and each of the last two as a ratio to ``copy``. Every number is the median of
``--repeats`` runs, so one run disturbed by another process does not decide it.
``--baseline-chain FILE`` measures another ``chain.py`` (an older commit's) interleaved
with the current one, for before/after ratios taken in the same run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

import numpy as np

from bridge.bench import parse_sizes
from bridge.frames import Frame
from bridge.transports.base import Source

#: (width, height) measured by default, as the issue asks.
DEFAULT_SIZES = [(512, 512), (1920, 1080)]


class SyntheticSource(Source):
    """A non-live, in-memory source: the same (H, W, 3) uint8 RGB ``image``, ``frames`` times.

    Like a file: the engine reads it with back-pressure and processes every frame.
    """

    live = False

    def __init__(self, image: np.ndarray, frames: int, fps: float = 30.0) -> None:
        self.image = image
        self.frames = frames
        self.fps = fps
        self._index = 0

    def open(self) -> None:
        self._index = 0

    def read(self) -> Frame | None:
        if self._index >= self.frames:
            return None
        frame = Frame(self.image, self._index, time.perf_counter(), self._index / self.fps)
        self._index += 1
        return frame


def synthetic_image(width: int, height: int) -> np.ndarray:
    """A deterministic (height, width, 3) uint8 RGB frame (gradients plus noise; content does not affect timing)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([(x * 255) // max(1, width - 1), (y * 255) // max(1, height - 1), (x + y) % 256], axis=-1)
    image = image + rng.integers(0, 16, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def time_copy(image: np.ndarray, loops: int) -> float:
    """Median ms of ``np.copyto(dst, image)`` into a preallocated array of the same shape."""
    dst = np.empty_like(image)
    np.copyto(dst, image)
    times = []
    for _ in range(loops):
        t0 = time.perf_counter()
        np.copyto(dst, image)
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def time_process(image: np.ndarray, loops: int, chain_cls: Any = None) -> float:
    """Median ms of one :meth:`Chain.process` call with the passthrough stage (``chain_cls``: default :class:`Chain`)."""
    from bridge.chain import Chain

    chain = (chain_cls or Chain).from_spec([("passthrough", {})])
    times = []
    for i in range(loops + 3):
        frame = Frame(image, i, time.perf_counter(), None)
        t0 = time.perf_counter()
        chain.process(frame)
        if i >= 3:
            times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def time_engine(image: np.ndarray, frames: int, chain_cls: Any = None) -> float:
    """ms per frame of a whole :class:`Engine` run: synthetic source -> passthrough -> null sink.

    Raises:
        RuntimeError: the engine did not deliver every frame (a bug; the run is not a measurement).
    """
    from bridge.chain import Chain
    from bridge.engine import Engine
    from bridge.transports.null import NullSink

    sink = NullSink()
    engine = Engine(SyntheticSource(image, frames), (chain_cls or Chain).from_spec([("passthrough", {})]), sink)
    t0 = time.perf_counter()
    stats = engine.run()
    elapsed = time.perf_counter() - t0
    if stats.frames_out != frames or sink.frames != frames:
        raise RuntimeError(f"engine delivered {stats.frames_out} of {frames} frames")
    return elapsed * 1000.0 / frames


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


def measure(sizes: list[tuple[int, int]], frames: int, repeats: int, baseline: Any = None) -> list[dict[str, Any]]:
    """Per size: ``copy_ms``, ``process_ms``, ``engine_ms`` (medians over ``repeats`` runs) and their ratios to ``copy_ms``.

    With a ``baseline`` Chain class, also ``baseline_process_ms``/``baseline_engine_ms``
    and their ratios, measured interleaved with the current chain in the same run.
    """
    results = []
    for width, height in sizes:
        image = synthetic_image(width, height)
        runs: dict[str, list[float]] = {}
        for _ in range(repeats):
            runs.setdefault("copy", []).append(time_copy(image, frames))
            for prefix, cls in (("", None), ("baseline_", baseline)) if baseline is not None else (("", None),):
                runs.setdefault(prefix + "process", []).append(time_process(image, frames, cls))
                runs.setdefault(prefix + "engine", []).append(time_engine(image, frames, cls))
        copy = statistics.median(runs.pop("copy"))
        result: dict[str, Any] = {"width": width, "height": height, "frames": frames, "repeats": repeats, "copy_ms": round(copy, 3)}
        for name, values in runs.items():
            ms = statistics.median(values)
            result[f"{name}_ms"] = round(ms, 3)
            result[f"{name}_ratio"] = round(ms / copy, 1)
        results.append(result)
    return results


def run(args: argparse.Namespace) -> int:
    """``avatar-bridge bench engine``: print the table (or JSON with --json); exit code 0."""
    from bridge.errors import ConfigError

    if args.frames < 1 or args.repeats < 1:
        raise ConfigError("bench engine: --frames and --repeats must be at least 1")
    sizes = parse_sizes(args.sizes, "bench engine") if args.sizes else DEFAULT_SIZES
    baseline = load_chain_class(args.baseline_chain) if args.baseline_chain else None
    results = measure(sizes, args.frames, args.repeats, baseline)
    if args.json:
        print(json.dumps(results))
        return 0
    print(f"engine overhead, passthrough stage, synthetic source -> null sink, {args.frames} frames, "
          f"median of {args.repeats} runs (ms per frame; x = ratio to np.copyto of the frame):")
    print(f"  {'size':>10s} {'copy':>8s} {'process':>16s} {'engine':>16s}")
    for r in results:
        print(f"  {r['width']:>4d}x{r['height']:<5d} {r['copy_ms']:8.3f} {r['process_ms']:8.3f} ({r['process_ratio']:5.1f}x)"
              f" {r['engine_ms']:8.3f} ({r['engine_ratio']:5.1f}x)")
        if "baseline_process_ms" in r:
            print(f"  {'baseline':>10s} {'':8s} {r['baseline_process_ms']:8.3f} ({r['baseline_process_ratio']:5.1f}x)"
                  f" {r['baseline_engine_ms']:8.3f} ({r['baseline_engine_ratio']:5.1f}x)   <- {args.baseline_chain}")
    return 0


def add_parser(sub: Any) -> None:
    """Add ``bench engine`` to the ``bench`` subparsers."""
    parser = sub.add_parser("engine", help="engine overhead per frame (passthrough stage) vs a plain copy of the frame")
    parser.add_argument("--sizes", default="", metavar="WxH,...", help="frame sizes (default 512x512,1920x1080)")
    parser.add_argument("--frames", type=int, default=200, metavar="N", help="frames per run (default 200)")
    parser.add_argument("--repeats", type=int, default=3, metavar="N", help="runs per number, median taken (default 3)")
    parser.add_argument("--baseline-chain", default="", metavar="FILE",
                        help="also measure the Chain of another chain.py in the same run (before/after an optimisation)")
    parser.add_argument("--json", action="store_true", help="print a JSON list, one object per size")
    parser.set_defaults(func=run)
