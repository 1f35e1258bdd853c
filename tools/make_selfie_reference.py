"""Record MediaPipe's own selfie segmentation masks on real frames, as reference data.

The person alpha stage runs the selfie segmenter on LiteRT (:mod:`bridge.vision.selfie`)
instead of ``mediapipe.solutions``. This tool records what ``mediapipe==0.10.21``'s
``SelfieSegmentation`` returns, so the LiteRT port is held to it
(``tests/test_alpha_selfie.py``: IoU of ``mask > 0.5`` >= 0.99).

Run it with the separate mediapipe environment (numpy 1.26), never the project venv::

    /work/mpvenv/bin/python tools/make_selfie_reference.py [--out tests/data/selfie_reference.npz]

Frames (real people, fetched from PyPI wheels by :mod:`bridge.samples`; not stored):

* ``carphone``: every 8th frame of ``carphone_pristine.mp4`` (15 frames, 176x144), and
  the same frames bicubic-upscaled to 320x240 (the stage's working resolution for a
  640x480 stream);
* ``camera``: scikit-image's ``camera.png`` (512x512 grey, as RGB).

For each frame and each model (``landscape`` = ``model_selection=1``, ``general`` = 0),
``SelfieSegmentation(...).process(rgb).segmentation_mask`` ((H, W) float32 in [0, 1])
is stored as uint8 ``round(255 * p)``. Output: one compressed ``.npz`` with arrays
``{case}_{model}`` of shape (N, H, W) uint8 and ``{case}_frames`` (the frame indices).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "selfie_reference.npz"
CARPHONE_STEP = 8


def frames() -> dict[str, tuple[list[np.ndarray], list[int]]]:
    """The reference cases: name -> (list of (H, W, 3) uint8 RGB frames, frame indices)."""
    import av

    from bridge.samples import fetch_sample

    with av.open(str(fetch_sample("carphone", quiet=True))) as container:
        clip = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    idx = list(range(0, len(clip), CARPHONE_STEP))
    camera = cv2.cvtColor(cv2.imread(str(fetch_sample("camera", quiet=True)), cv2.IMREAD_GRAYSCALE), cv2.COLOR_GRAY2RGB)
    return {
        "carphone": ([clip[i] for i in idx], idx),
        "carphone320": ([cv2.resize(clip[i], (320, 240), interpolation=cv2.INTER_CUBIC) for i in idx], idx),
        "camera": ([camera], [0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    from mediapipe.python.solutions import selfie_segmentation

    data: dict[str, np.ndarray] = {}
    for case, (images, idx) in frames().items():
        data[f"{case}_frames"] = np.array(idx)
        for model, selection in (("landscape", 1), ("general", 0)):
            with selfie_segmentation.SelfieSegmentation(model_selection=selection) as seg:
                masks = []
                for rgb in images:
                    mask = seg.process(np.ascontiguousarray(rgb)).segmentation_mask
                    masks.append(np.round(np.clip(mask, 0, 1) * 255).astype(np.uint8))
            data[f"{case}_{model}"] = np.stack(masks)
            print(f"{case} {model}: {data[f'{case}_{model}'].shape}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **data)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
