"""``avatar-bridge bench pose``: pose stage ms/frame on real frames (carphone, resized).

Times the whole stage call (MediaPipe Pose + OpenPose skeleton drawing + tensor
conversion) after a warm-up, per size; prints the median and p95 in ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import cv2
import torch


def measure(sizes: list[tuple[int, int]], frames: int, warmup: int = 5) -> list[dict[str, Any]]:
    """Median/p95 ms per frame of the pose stage at each (width, height), on carphone frames."""
    import av

    from bridge.samples import fetch_sample
    from bridge.stages import get_stage

    with av.open(str(fetch_sample("carphone", quiet=True))) as container:
        clip = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    results = []
    for width, height in sizes:
        stage = get_stage("pose")()
        images = [torch.from_numpy(cv2.resize(clip[i % len(clip)], (width, height), interpolation=cv2.INTER_LINEAR))[None]
                  for i in range(frames + warmup)]
        times = []
        for i, image in enumerate(images):
            t0 = time.perf_counter()
            stage(video=[image])
            if i >= warmup:
                times.append((time.perf_counter() - t0) * 1000.0)
        times.sort()
        results.append({"width": width, "height": height, "frames": frames,
                        "median_ms": round(statistics.median(times), 2),
                        "p95_ms": round(times[int(0.95 * (len(times) - 1))], 2)})
    return results


def _run(args: argparse.Namespace) -> int:
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",")]
    results = measure(sizes, args.frames)  # type: ignore[arg-type]
    if args.json:
        print(json.dumps(results))
    else:
        for r in results:
            print(f"pose {r['width']}x{r['height']}: median {r['median_ms']} ms/frame, p95 {r['p95_ms']} ms ({r['frames']} frames)")
    return 0


def add_parser(sub: Any) -> None:
    """Add ``bench pose`` to the bench subparsers."""
    p = sub.add_parser("pose", help="pose stage ms/frame (MediaPipe pose + skeleton drawing)")
    p.add_argument("--sizes", default="640x480,176x144", help="comma-separated WxH (default 640x480,176x144)")
    p.add_argument("--frames", type=int, default=60, help="timed frames per size (default 60)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_run)
