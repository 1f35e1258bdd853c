"""MediaPipe's selfie segmenter on LiteRT: a person probability mask for one RGB frame.

Two bundled models (Apache-2.0, from the ``mediapipe==0.10.21`` wheel; see
``bridge/vision/models/NOTICE``):

* ``landscape``: ``selfie_segmentation_landscape.tflite``, input 144x256 (H x W);
* ``general``: ``selfie_segmentation.tflite``, input 256x256.

Pre- and post-processing follow MediaPipe's ``selfie_segmentation_cpu.pbtxt`` graph
(``ImageToTensorCalculator``: the whole image as the ROI, ``keep_aspect_ratio: false``,
``output_tensor_float_range {min: 0 max: 1}``, ``border_mode: BORDER_ZERO``;
``TensorsToSegmentationCalculator`` with ``activation: NONE``, resizing the one-channel
output back to the image size). The CPU image-to-tensor step is an OpenCV warp whose
transform maps the ROI's *corners* onto the tensor's corners (scale ``W_in / W``, no
half-pixel shift), bilinear, on the uint8 image, then scaled to [0, 1]; a
``cv2.resize`` (which maps pixel centres) shifts the input by a fraction of a pixel
and moves the mask by up to IoU 0.04 on a 512x512 frame. With the corner mapping the
masks match ``mediapipe.solutions.selfie_segmentation`` 0.10.21 to a mean |diff| of
1e-4 (IoU 1.0) on carphone and camera.png (``tests/test_alpha_selfie.py`` against
``tests/data/selfie_reference.npz``, made by ``tools/make_selfie_reference.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from bridge.vision.runtime import LiteModel

#: Model name -> bundled file.
SELFIE_MODELS = {
    "landscape": "selfie_segmentation_landscape.tflite",
    "general": "selfie_segmentation.tflite",
}


class SelfieSegmenter:
    """Person probability from MediaPipe's selfie segmentation model, on LiteRT.

    Args:
        model: ``"landscape"`` (144x256 input, faster) or ``"general"`` (256x256).
        num_threads: LiteRT CPU threads, >= 1.

    Raises:
        ValueError: unknown ``model``.
        ModelMissingError: LiteRT or the model file is missing (from :class:`LiteModel`).

    Not thread-safe (one interpreter); scratch buffers are reused between calls.
    """

    def __init__(self, model: str = "landscape", num_threads: int = 1) -> None:
        if model not in SELFIE_MODELS:
            raise ValueError(f"selfie model {model!r}: expected one of {', '.join(SELFIE_MODELS)}")
        self.model_name = model
        self._model = LiteModel(SELFIE_MODELS[model], num_threads)
        _, self.input_height, self.input_width, _ = self._model.input_shape
        self._resized = np.empty((self.input_height, self.input_width, 3), np.uint8)
        self._input = np.empty((1, self.input_height, self.input_width, 3), np.float32)
        self._matrix = np.zeros((2, 3), np.float64)
        self._buffers: dict[tuple[str, tuple[int, int]], np.ndarray] = {}

    def raw(self, rgb: np.ndarray, matrix: np.ndarray | None = None, border: int = cv2.BORDER_CONSTANT) -> np.ndarray:
        """The model's own output for an (H, W, 3) uint8 RGB image of any size.

        Args:
            rgb: (H, W, 3) uint8 RGB.
            matrix: optional (2, 3) affine from image pixels to model-input pixels (a
                crop); default: the whole image stretched onto the input, corner to
                corner (MediaPipe's mapping, see the module docstring).
            border: OpenCV border mode for input pixels outside the image (zero, as
                MediaPipe, by default).

        Returns:
            (input_height, input_width) float32 person probability in [0, 1], on the
            model's grid; a new array.
        """
        if matrix is None and rgb.shape[:2] == (self.input_height, self.input_width):
            resized = rgb
        else:
            if matrix is None:
                matrix = self._matrix
                matrix[0, 0] = self.input_width / rgb.shape[1]
                matrix[1, 1] = self.input_height / rgb.shape[0]
            resized = cv2.warpAffine(rgb, matrix, (self.input_width, self.input_height), dst=self._resized,
                                     flags=cv2.INTER_LINEAR, borderMode=border, borderValue=0)
        np.multiply(resized, np.float32(1.0 / 255.0), out=self._input[0], dtype=np.float32)
        out = self._model(self._input)[0]
        return out.reshape(self.input_height, self.input_width)

    def __call__(self, rgb: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Person probability for an (H, W, 3) uint8 RGB frame.

        Returns:
            (H, W) float32 in [0, 1] (``out`` when given, an (H, W) float32 buffer).
        """
        h, w = rgb.shape[:2]
        mask = self.raw(rgb)
        if mask.shape == (h, w):
            if out is None:
                return mask
            np.copyto(out, mask)
            return out
        return cv2.resize(mask, (w, h), dst=out, interpolation=cv2.INTER_LINEAR)

    def zoom(self, rgb: np.ndarray, windows: list["Window"], out: np.ndarray, scale: float = 1.0,
             models: list[Any] | None = None) -> np.ndarray:
        """Segment ``rgb`` again inside each window and write the result into ``out``.

        Args:
            rgb: (H', W', 3) uint8 RGB: the frame, at ``scale`` times the size of ``out``
                (the windows are cut from it, so a larger frame gives them more detail).
            windows: squares in ``out``'s pixels (:func:`zoom_windows`).
            out: (H, W) float32 person probability of the full-frame pass; inside the
                windows it is replaced by the windows' own masks (per-pixel max where
                windows overlap), outside it is kept.
            scale: ``rgb`` pixels per ``out`` pixel.
            models: per window, the segmenter that segments it (anything with ``raw``,
                ``input_width`` and ``input_height``, each fed the window at its own input
                size); default this one for every window.

        Returns:
            ``out``.
        """
        if not windows:
            return out
        h, w = out.shape[:2]
        acc = self._scratch("acc", (h, w))
        acc.fill(-1.0)
        flat = self._scratch("back", (h * w, 1)).reshape(-1)  # each window's part, a contiguous prefix
        for i, window in enumerate(windows):
            # the mask goes back into the frame only over the window's own box (plus a pixel for
            # the bilinear edge): everything outside it maps outside the model's input anyway. A
            # small person's window is a few percent of the frame (a street of walkers: 1.2 ms
            # a frame in four whole-frame warps and maxima before)
            r = window.side / 2
            x0, y0 = max(0, math.floor(window.cx - r) - 1), max(0, math.floor(window.cy - r) - 1)
            x1, y1 = min(w, math.ceil(window.cx + r) + 2), min(h, math.ceil(window.cy + r) + 2)
            if x1 <= x0 or y1 <= y0:
                continue  # wholly outside the frame: no model run
            model = self if models is None else models[i]
            matrix = window.matrix(model.input_width, model.input_height)
            source = matrix if scale == 1.0 else Window(window.cx * scale, window.cy * scale, window.side * scale).matrix(
                model.input_width, model.input_height)
            mask = model.raw(rgb, source)
            roi = matrix.copy()
            roi[:, 2] += matrix[:, 0] * x0 + matrix[:, 1] * y0
            back = flat[:(y1 - y0) * (x1 - x0)].reshape(y1 - y0, x1 - x0)
            cv2.warpAffine(mask, roi, (x1 - x0, y1 - y0), dst=back, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=-1.0)
            part = acc[y0:y1, x0:x1]
            np.maximum(part, back, out=part)
        np.copyto(out, acc, where=acc >= 0.0)
        return out

    def _scratch(self, name: str, shape: tuple[int, int]) -> np.ndarray:
        key = (name, shape)
        buf = self._buffers.get(key)
        if buf is None:
            if len(self._buffers) > 8:
                self._buffers.clear()
            buf = self._buffers[key] = np.empty(shape, np.float32)
        return buf


#: A person region wider than this many times its height is taken for several people side
#: by side (two people shoulder to shoulder merge into one region of the full-frame mask)
#: and covered by square windows of the region's height instead of one wide window.
SPLIT_ASPECT = 1.3


@dataclass(frozen=True)
class Window:
    """A square zoom window in image pixels: centre (cx, cy) and side length."""

    cx: float
    cy: float
    side: float

    def matrix(self, input_width: int, input_height: int) -> np.ndarray:
        """(2, 3) float64 affine from image pixels to a model input of the given size.

        The square is stretched onto the input corner to corner (for the landscape model a
        square becomes 256x144, as MediaPipe stretches any frame onto the input).
        """
        sx, sy = input_width / self.side, input_height / self.side
        return np.array([[sx, 0.0, input_width / 2 - sx * self.cx], [0.0, sy, input_height / 2 - sy * self.cy]], np.float64)


def _components(mask: np.ndarray, min_area: float, level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The connected regions (8-connected) of ``mask > level``: (labels (H, W) int32, stats
    (count, 5) int32 as OpenCV gives them, keep (count,) bool: label 0, the background,
    never; a region of at least ``min_area`` of the frame's area)."""
    binary = cv2.compare(mask, float(level), cv2.CMP_GT)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= float(min_area) * mask.shape[0] * mask.shape[1]
    keep[0] = False
    return labels, stats, keep


def person_regions(mask: np.ndarray, min_area: float, level: float = 0.5) -> list[tuple[int, int, int, int]]:
    """Bounding boxes of the connected regions (8-connected) of ``mask > level``.

    Args:
        mask: (H, W) float32 person probability.
        min_area: smallest region kept, as a fraction of the frame's area.
        level: the probability a region's pixels lie above.

    Returns:
        ``(x, y, w, h)`` in pixels per region, largest (most pixels) first.
    """
    _, stats, keep = _components(mask, min_area, level)
    regions = [(int(s[4]), tuple(int(v) for v in s[:4])) for s in stats[keep]]
    return [r for _, r in sorted(regions, key=lambda item: -item[0])]


def person_region_pixels(mask: np.ndarray, min_area: float, level: float = 0.5) -> np.ndarray:
    """(H, W) bool: the pixels of the regions :func:`person_regions` returns (same arguments);
    smaller specks are left out."""
    labels, _, keep = _components(mask, min_area, level)
    return keep[labels]


def zoom_windows(regions: list[tuple[float, float, float, float]], height: int, width: int, scale: float,
                 max_fraction: float, split: bool = True) -> list[Window]:
    """Square windows in which each person region fills the model's input.

    One window per region, centred on it, of side ``scale * max(w, h)``; a region wider
    than :data:`SPLIT_ASPECT` times its height gets ``ceil(w / h)`` windows of side
    ``scale * h`` spread along it, unless it runs off both sides of the frame (a close-up's
    shoulders: nobody in it is seen whole, so it is not taken apart). A single window whose side exceeds ``max_fraction`` of
    the frame's long side is left out: that person already fills the full-frame pass, and a
    window that cuts a big person costs more than it gives. The windows of a split region
    are kept at any size: they are there to show the model one of several people at a time
    (it is made for one subject), not to magnify; on zidane.jpg (two men, one pointing
    across the other) they lift IoU from 0.858 to 0.974, and on crops and rescales of the
    development images they changed nothing else (docs/benchmarks.md).

    Args:
        regions: (x, y, w, h) boxes in pixels.
        height, width: the frame size in pixels.
        scale: window side relative to the region (>= 1 leaves a margin around the person).
        max_fraction: largest window side as a fraction of ``max(height, width)``.
        split: take a wide region apart; False when each box is one person (a track, a pose
            person: a footballer's spread limbs are not two people; messi5.jpg's central
            80 % 0.79 as two half-windows, 0.95 as one).

    Returns:
        The windows (:class:`Window`: centre and side in pixels), in the order of ``regions``.
    """
    limit = float(max_fraction) * max(height, width)
    windows = []
    for x, y, w, h in regions:
        if w <= 0 or h <= 0:
            continue
        if split and w > SPLIT_ASPECT * h and not (x <= 0 and x + w >= width):
            count = math.ceil(w / h)
            side = scale * h
            centres = [x + h / 2 + k * (w - h) / (count - 1) for k in range(count)]
            windows.extend(Window(cx, y + h / 2, side) for cx in centres)
        else:
            window = Window(x + w / 2, y + h / 2, scale * max(w, h))
            if window.side <= limit:
                windows.append(window)
    return windows
