"""``avatar-bridge bench pose``: pose stage ms/frame on real frames (carphone, resized).

Times the whole stage call (pose detection/tracking + OpenPose skeleton drawing + tensor
conversion) after a warm-up, per size; prints the median and p95 in ms, the median of the
drawing alone (:func:`bridge.stages.pose.draw_skeleton` into a reused canvas), and, for the
``blazepose`` backend, how often the detector ran (once: the person was tracked) and the
median of one bare landmark-model call measured in the same run (the baseline the stage's
overhead is a ratio against).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import cv2
import torch

from bridge.bench import parse_sizes


def measure(sizes: list[tuple[int, int]], frames: int, warmup: int = 5, backend: str = "blazepose",
            threads: int = 1, max_people: int = 1) -> list[dict[str, Any]]:
    """Median/p95 ms per frame of the pose stage at each (width, height), on carphone frames.

    Returns one dict per size: ``width``, ``height``, ``frames``, ``median_ms``, ``p95_ms``,
    ``draw_median_ms`` (drawing only), ``detected`` (frames with a neck found), and for
    blazepose ``detector_runs`` (over warm-up and timed frames) and ``model_median_ms``
    (the landmark model alone, LiteRT invoke on a 256x256 crop, same threads).
    """
    import numpy as np

    from bridge.samples import read_clip
    from bridge.stages.pose import draw_skeleton
    from bridge.stages import get_stage

    clip = read_clip("carphone")
    results = []
    for width, height in sizes:
        stage = get_stage("pose")(backend=backend, threads=threads)
        images = [torch.from_numpy(cv2.resize(clip[i % len(clip)], (width, height), interpolation=cv2.INTER_LINEAR))[None]
                  for i in range(frames + warmup)]
        times, draw_times, detected = [], [], 0
        canvas = np.zeros((height, width, 3), np.uint8)
        for i, image in enumerate(images):
            t0 = time.perf_counter()
            out = stage(video=[image], max_people=max_people)
            if i >= warmup:
                times.append((time.perf_counter() - t0) * 1000.0)
                keypoints = out["keypoints"][0].numpy()
                detected += int(keypoints[1, 2] > 0)
                t0 = time.perf_counter()
                draw_skeleton(keypoints, height, width, out=canvas)
                draw_times.append((time.perf_counter() - t0) * 1000.0)
        times.sort()
        result = {"width": width, "height": height, "frames": frames,
                  "median_ms": round(statistics.median(times), 2),
                  "p95_ms": round(times[int(0.95 * (len(times) - 1))], 2),
                  "draw_median_ms": round(statistics.median(draw_times), 3), "detected": detected}
        tracker = getattr(getattr(stage, "_backend", None), "tracker", None)
        if tracker is not None:
            result["detector_runs"] = tracker.detector_runs
            model = tracker.landmarker.model
            crop = np.random.default_rng(0).random(model.input_shape, dtype=np.float32)
            model_times = []
            for i in range(max(10, frames // 2) + 3):
                t0 = time.perf_counter()
                model(crop)
                if i >= 3:
                    model_times.append((time.perf_counter() - t0) * 1000.0)
            result["model_median_ms"] = round(statistics.median(model_times), 2)
        results.append(result)
    return results


def _run(args: argparse.Namespace) -> int:
    sizes = parse_sizes(args.sizes, "bench pose")
    results = measure(sizes, args.frames, backend=args.backend, threads=args.threads, max_people=args.max_people)
    if args.json:
        print(json.dumps(results))
    else:
        for r in results:
            extra = ""
            if "model_median_ms" in r:
                extra = (f"; landmark model alone {r['model_median_ms']} ms (stage/model {r['median_ms'] / r['model_median_ms']:.2f}x), "
                         f"detector ran {r['detector_runs']}x")
            print(f"pose {r['width']}x{r['height']}: median {r['median_ms']} ms/frame, p95 {r['p95_ms']} ms, "
                  f"drawing {r['draw_median_ms']} ms ({r['frames']} frames, person found in {r['detected']}){extra}")
    return 0


def add_parser(sub: Any) -> None:
    """Add ``bench pose`` to the bench subparsers."""
    p = sub.add_parser("pose", help="pose stage ms/frame (BlazePose on LiteRT + skeleton drawing)")
    p.add_argument("--sizes", default="640x480,176x144", help="comma-separated WxH (default 640x480,176x144)")
    p.add_argument("--frames", type=int, default=60, help="timed frames per size (default 60)")
    p.add_argument("--backend", default="blazepose", choices=["blazepose", "mediapipe", "openpose", "dwpose"],
                   help="pose backend (default blazepose; mediapipe is its old name)")
    p.add_argument("--threads", type=int, default=1, help="LiteRT threads of the blazepose backend (default 1)")
    p.add_argument("--max-people", type=int, default=1, help="people followed (default 1)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_run)
