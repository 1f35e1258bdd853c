"""Matte refinement: turn a coarse person probability into an alpha matte that follows the image.

Shapes and dtypes: masks and mattes are (H, W) float32 in [0, 1]; guides are (H, W)
float32 luma in [0, 1] at the working resolution and (H, W) uint8 luma at full
resolution. Functions write into ``out`` when it is given and the classes keep their
scratch buffers, so the per-frame path allocates nothing once the frame size is stable.

The person alpha stage (:mod:`bridge.stages.alpha`) runs, per frame:

1. segmentation at a *working resolution*: the frame area-downscaled by an integer
   factor so its long side is at most :data:`WORK_MAX_SIDE` px (:func:`work_scale`),
   about the selfie model's own 256x144 grid, so nothing is lost and the model's input
   conversion is cheap;
2. :class:`TemporalSmoother`: a motion-aware exponential moving average of the raw
   probability against flicker;
3. :class:`FastGuidedFilter`: edge-aware upsampling of the probability to the full
   frame, guided by the frame's luma, with coefficients fitted on a coarser grid
   (long side <= :data:`REFINE_MAX_SIDE`) (the fast guided filter: K. He and J. Sun,
   "Fast Guided Filter", arXiv:1505.00996, 2015, built on K. He, J. Sun, X. Tang,
   "Guided Image Filtering", ECCV 2010 / TPAMI 2013);
4. :func:`soft_threshold` of the refined probability: a linear ramp of half-width
   ``softness`` around ``threshold``. Thresholding *after* the filter is what keeps
   the filter's faint copies of background texture (the striped car seat next to the
   head in the carphone clip) out of the matte: they sit below the ramp;
5. :func:`feather`: an optional Gaussian blur of the matte edge.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

#: Long side of the working resolution, px. 320 keeps 640x480 at an exact 2x (fast
#: area resampling) and 1920x1080 at 6x, and is close to the landscape selfie model's
#: 256x144 input (``shared/notes/platform.md``), so the model sees all it can use.
WORK_MAX_SIDE = 320

#: Long side of the refinement grid, px: the guided filter's coefficients are fitted on
#: the frame shrunk to at most this (640x480 -> 160x120) and applied at full size (the
#: fast guided filter's subsampling; He & Sun report little loss at 4x). On the
#: carphone reference matte, 160 with radius 1 scores as well as 320 with radius 2 and
#: saves about 2 ms a frame at 640x480 on the 2-core CI machine.
REFINE_MAX_SIDE = 160

#: Luma change (in [0, 1] units, box-averaged over 5x5 working pixels) at which the
#: temporal smoother stops using the previous mask: there the image moved, so the mask
#: must follow at once. Below it the blend weight falls linearly from ``temporal`` to 0.
#: Chosen by a sweep on carphone (0.06 / 0.1 / 0.15 at weights 0.8-0.95, flicker vs IoU
#: against the reference matte, docs/benchmarks.md): 0.1 with weight 0.8 cuts flicker by
#: about a fifth and costs 0.0005 IoU; 0.15 starts to lag (IoU -0.002 and falling).
MOTION_SCALE = 0.1


def work_scale(height: int, width: int, max_side: int = WORK_MAX_SIDE) -> int:
    """The integer downscale factor from a (height, width) frame to the working resolution.

    ``ceil(max(height, width) / max_side)``, at least 1: 640x480 -> 2 (320x240),
    1920x1080 -> 6 (320x180), 176x144 -> 1 (works at full size).
    """
    return max(1, math.ceil(max(height, width) / max_side))


def downscale(image: np.ndarray, factor: int, out: np.ndarray | None = None) -> np.ndarray:
    """Shrink an (H, W[, C]) image by the integer ``factor`` to (H // factor, W // factor[, C]).

    Area averaging (``cv2.INTER_AREA``) when the factor divides both sides, done as 2x
    halvings first and one last step (OpenCV's area resampling is fast only at 2x:
    1280x720 -> 320x180 takes 0.3 ms this way against 2.3 ms in one call); bilinear
    otherwise (area resampling at a fractional ratio costs several ms at 640x480).
    ``factor`` 1 returns ``image`` itself.
    """
    if factor <= 1:
        return image
    h, w = image.shape[:2]
    size = (max(1, w // factor), max(1, h // factor))
    if h % factor or w % factor:
        return cv2.resize(image, size, dst=out, interpolation=cv2.INTER_LINEAR)
    while factor % 2 == 0 and factor > 2:
        image = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)
        factor //= 2
    return cv2.resize(image, size, dst=out, interpolation=cv2.INTER_AREA)


#: A row or column at the frame's border belongs to a black bar (letterbox or pillarbox: a
#: film's bars, TouchDesigner's Fit modes, a portrait phone clip in a landscape frame) when
#: no channel of any of its pixels exceeds this level (of 255). Measured on the band clips
#: (352x288, 32-row bars): their bars read 0-10 (codec noise), the dark picture rows next to
#: them 12-37; exact black from TouchDesigner reads 0.
BAR_LEVEL = 16


def black_bars(rgb: np.ndarray, level: int = BAR_LEVEL) -> tuple[int, int, int, int]:
    """The black bars around a frame's picture: ``(top, bottom, left, right)`` rows and columns.

    ``rgb``: (H, W, 3) uint8. A bar is the run of rows (columns) from a border inward in
    which no channel of any pixel exceeds ``level`` (:data:`BAR_LEVEL`). A frame that is
    black everywhere is all bar: ``top`` is H. Nothing in a bar is a person, but the selfie
    models carry a person cut by the picture's edge on into the bar (a singer cut by the
    bottom of a letterboxed picture: 31.5k person pixels a clip of 40 frames in the bar).
    """
    h, w = rgb.shape[:2]
    flat = np.ascontiguousarray(rgb).reshape(h, -1)  # (H, W * C): a view of a contiguous frame
    # on the (H, W * C) view: 0.03 ms at 320x240 where a max over the channel axis first
    # takes 1.9 ms (each reduction in its fastest library: OpenCV along rows, numpy down columns)
    rows = cv2.reduce(flat, 1, cv2.REDUCE_MAX)[:, 0] > level
    if not rows.any():
        return h, 0, 0, 0
    columns = flat.max(axis=0).reshape(w, -1).max(axis=1) > level
    top, bottom = int(rows.argmax()), int(rows[::-1].argmax())
    left, right = int(columns.argmax()), int(columns[::-1].argmax())
    return top, bottom, left, right


#: :class:`PictureArea`: a bar that moves by more than this share of the frame's side (a
#: dark picture row next to a bar reads as bar on a dark frame and not on a bright one) ...
PICTURE_TOLERANCE = 1 / 16
#: ... on this many frames in a row moves the picture (a new source, a new Fit mode).
PICTURE_FRAMES = 3
#: Bars that would leave less than this share of the frame's height or width are a dark
#: scene, not bars: the picture is then the whole frame.
PICTURE_MIN = 0.5


class PictureArea:
    """The picture between a frame's black bars (:func:`black_bars`), held steady over a stream.

    The person stage runs its models on the picture alone, as if it were the frame: a
    person cut by the picture's edge is then cut by the frame's edge, as the models expect
    (between bars, camera.png's dark coat ran into the black bar and was lost: letterboxed
    0.72, pillarboxed 0.76, against 0.96 on the picture alone). The picture moves only when
    the bars move by more than :data:`PICTURE_TOLERANCE` of the frame's side on
    :data:`PICTURE_FRAMES` frames in a row; a frame black everywhere keeps it; bars that
    leave less than :data:`PICTURE_MIN` of a side are taken for a dark scene (no bars); bars
    come in pairs, so of a top and bottom (left and right) that differ by more than the
    tolerance only their common part counts (a black ceiling above a lit stage is no bar).

    Attributes:
        bars: ``(top, bottom, left, right)`` rows and columns of the held picture's bars,
            in the pixels of the frames given to :meth:`update`; None before the first frame.
    """

    def __init__(self) -> None:
        self.bars: tuple[int, int, int, int] | None = None
        self._candidate: tuple[int, int, int, int] | None = None
        self._count = 0
        self._size: tuple[int, int] | None = None  # the frames' (height, width)

    def reset(self) -> None:
        """Forget the picture: the next frame's bars are taken at once (a new shot, a new stream)."""
        self.bars, self._candidate, self._count, self._size = None, None, 0, None

    def update(self, bars: tuple[int, int, int, int], height: int, width: int) -> bool:
        """Take one frame's bars (``black_bars`` of an (height, width) frame).

        Returns:
            True when the held picture moved (not on the first frame): what was found on
            the old picture is in other pixels now, and the caller starts afresh. A frame of
            another size moves it at once.
        """
        top, bottom, left, right = bars
        moved = False
        if self._size != (height, width):
            moved = self.bars is not None  # a picture held in frames of another size
            self.reset()
            self._size = (height, width)
        if top >= height:
            return moved  # black everywhere: nothing to say where the picture is
        if top + bottom > height * (1 - PICTURE_MIN) or left + right > width * (1 - PICTURE_MIN):
            bars = (0, 0, 0, 0)
        # bars come in pairs (a letterbox above and below, a pillarbox left and right): a dark
        # run on one side only (a black ceiling, a dark wall) is the picture's own, and of an
        # uneven pair only the part both sides share is taken
        top, bottom, left, right = bars
        if abs(top - bottom) > height * PICTURE_TOLERANCE:
            top = bottom = min(top, bottom)
        if abs(left - right) > width * PICTURE_TOLERANCE:
            left = right = min(left, right)
        bars = (top, bottom, left, right)
        if self.bars is None:
            self.bars = bars
            return moved
        tolerance = (height * PICTURE_TOLERANCE, height * PICTURE_TOLERANCE, width * PICTURE_TOLERANCE, width * PICTURE_TOLERANCE)
        if all(abs(a - b) <= t for a, b, t in zip(bars, self.bars, tolerance)):
            self._candidate, self._count = None, 0
            return False
        if self._candidate is not None and all(abs(a - b) <= t for a, b, t in zip(bars, self._candidate, tolerance)):
            self._count += 1
        else:
            self._candidate, self._count = bars, 1
        if self._count < PICTURE_FRAMES:
            return False
        self.bars, self._candidate, self._count = bars, None, 0
        return True


#: :func:`exposure_levels`: the span (of 255) that a frame's levels are stretched to for the
#: models, the percentile of its pixels' brightest channel that counts as its bright end (its
#: complement, of the darkest channel, is the black point), and the largest gain. Every
#: development frame spans 217-255 (a lamp, a window, a white shirt against black) but
#: band-duo's darkest (162), so nearly all are left alone; the stills at 0.2 and 0.4 of their
#: levels with sensor noise and JPEG read 46-102. A level of 160 instead of 200 gave the dark
#: stills 0.840 against 0.855; a largest gain of 4 amplified the noise around small walkers
#: (vtest.avi at 0.25: 0.714 against 0.781 at 3 and 0.745 without), 2 left too dark (a CG
#: woman at 0.25: 0.685 against 0.823 at 3).
EXPOSURE_LEVEL = 200.0
EXPOSURE_PERCENTILE = 99.0
EXPOSURE_MAX_GAIN = 3.0


def exposure_levels(rgb: np.ndarray) -> tuple[float, float]:
    """``(black, gain)``: the levels stretch that brings a dark or washed-out frame's span up
    to :data:`EXPOSURE_LEVEL` (:func:`apply_levels` maps ``x`` to ``(x - black) * gain``).

    ``rgb``: (H, W, 3) uint8, read on a grid of about 80 columns (every 8th pixel at 640x480;
    0.1 ms). The bright end is the :data:`EXPOSURE_PERCENTILE` percentile of each pixel's
    brightest channel, the black point the ``100 - EXPOSURE_PERCENTILE`` percentile of its
    darkest one. A span of at least :data:`EXPOSURE_LEVEL` is a frame exposed as usual:
    ``(0.0, 1.0)``, nothing changes. A narrower one (underexposed: a dim room; washed out: stage
    haze, a lifted black level) is stretched by ``EXPOSURE_LEVEL / span``, at most
    :data:`EXPOSURE_MAX_GAIN`, from its black point. The selfie models and the pose models
    lose people in such a frame that they find once its levels are stretched (the stills at a
    fifth of their levels with noise and JPEG 0.755 -> 0.836; see docs/benchmarks.md).
    """
    step = max(1, max(rgb.shape[:2]) // 80)
    sample = rgb[::step, ::step]
    count = sample.shape[0] * sample.shape[1]
    if count == 0:
        return 0.0, 1.0
    high = int(EXPOSURE_PERCENTILE / 100.0 * (count - 1))
    bright = float(np.partition(sample.max(axis=2).ravel(), high)[high])
    low = count - 1 - high
    black = float(np.partition(sample.min(axis=2).ravel(), low)[low])
    span = bright - black
    if span >= EXPOSURE_LEVEL:
        return 0.0, 1.0
    return black, float(min(EXPOSURE_MAX_GAIN, EXPOSURE_LEVEL / max(span, 1.0)))


def apply_levels(rgb: np.ndarray, black: float, gain: float, out: np.ndarray | None = None) -> np.ndarray:
    """``rgb`` ((H, W, 3) uint8) mapped to ``(x - black) * gain``, clipped to [0, 255] (one
    lookup table pass); a new array, or ``out`` (same shape and dtype) when given."""
    ramp = (np.arange(256, dtype=np.float32) - np.float32(black)) * np.float32(gain) + 0.5
    lut = np.clip(ramp, 0.0, 255.0).astype(np.uint8)
    return cv2.LUT(rgb, lut, dst=out)


def soft_threshold(mask: np.ndarray, threshold: float, softness: float, out: np.ndarray | None = None) -> np.ndarray:
    """Map a person probability mask to alpha with a linear ramp around ``threshold``.

    ``alpha = clip((mask - (threshold - softness)) / (2 * softness), 0, 1)``; softness 0
    is a hard cut (``mask > threshold`` -> 1).

    Args:
        mask: (H, W) float32 in [0, 1].
        threshold: probability that maps to alpha 0.5, in [0, 1].
        softness: half-width of the ramp in probability units, >= 0 (0 = hard cut).
        out: optional (H, W) float32 buffer for the result (may be ``mask`` itself).

    Returns:
        (H, W) float32 alpha in [0, 1].
    """
    if softness <= 1e-6:
        _, out = cv2.threshold(mask, threshold, 1.0, cv2.THRESH_BINARY, dst=out)
        return out
    gain, offset = ramp(threshold, softness)
    return clip01(cv2.addWeighted(mask, gain, mask, 0.0, offset, dst=out))


def _box(src: np.ndarray, radius: int, out: np.ndarray | None = None) -> np.ndarray:
    """Mean over a (2r+1)^2 window, borders reflected (the guided filter's f_mean)."""
    k = 2 * radius + 1
    return cv2.boxFilter(src, -1, (k, k), dst=out, normalize=True, borderType=cv2.BORDER_REFLECT)


class FastGuidedFilter:
    """Edge-aware upsampling of a low-resolution mask with the fast guided filter.

    He & Sun 2015 (arXiv:1505.00996), gray guide: at the working resolution fit, in
    every (2r+1)^2 window, the linear model ``p ~ a * I + b`` of the mask ``p`` on the
    guide ``I`` (``a = cov(I, p) / (var(I) + eps)``, ``b = mean(p) - a * mean(I)``),
    average ``a`` and ``b`` over the windows, upsample them bilinearly and apply them to
    the full-resolution guide: ``q = mean_a * I_full + mean_b``. Where the mask is flat
    (inside the person, far background) ``a = 0`` and ``q = p``; near an edge ``q``
    takes its shape from the image. Cost at full resolution: two bilinear resizes and
    one multiply-add; everything else runs on the small image.

    The instance keeps its scratch buffers; it holds no parameters.
    """

    def __init__(self) -> None:
        self._buffers: dict[tuple[str, tuple[int, ...]], np.ndarray] = {}

    def _buf(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        key = (name, shape)
        buf = self._buffers.get(key)
        if buf is None:
            if len(self._buffers) > 32:  # the frame size changed: drop the old buffers
                self._buffers.clear()
            buf = self._buffers[key] = np.empty(shape, np.float32)
        return buf

    def __call__(
        self,
        mask: np.ndarray,
        guide: np.ndarray,
        guide_full: np.ndarray | None,
        radius: int,
        eps: float,
        gain: float = 1.0,
        offset: float = 0.0,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """Refine ``mask`` along the edges of the guide, at the guide's full resolution.

        Args:
            mask: (h, w) float32 in [0, 1] at the working resolution.
            guide: (h, w) float32 luma in [0, 1], same size as ``mask``.
            guide_full: (H, W) uint8 luma of the full frame, or None when the working
                resolution is the full resolution (then this is the plain guided filter).
            radius: window radius in working-resolution pixels, >= 1.
            eps: regularisation in [0, 1]-luma units squared, > 0: edges weaker than
                about ``sqrt(eps)`` in luma are smoothed over rather than followed.
            gain, offset: an affine map applied to the result before clipping,
                ``clip(gain * q + offset, 0, 1)``; folded into the low-resolution
                coefficients, so a soft threshold (:func:`ramp`) costs nothing at full
                resolution.
            out: optional (H, W) float32 buffer for the result.

        Returns:
            (H, W) float32 in [0, 1] (``out`` when given).
        """
        shape = mask.shape
        r = max(1, int(radius))
        mean_i = _box(guide, r, self._buf("mean_i", shape))
        mean_p = _box(mask, r, self._buf("mean_p", shape))
        tmp = np.multiply(guide, mask, out=self._buf("tmp", shape))
        cov = _box(tmp, r, self._buf("cov", shape))
        cov -= np.multiply(mean_i, mean_p, out=tmp)
        np.multiply(guide, guide, out=tmp)
        var = _box(tmp, r, self._buf("var", shape))
        var -= np.multiply(mean_i, mean_i, out=tmp)
        var += float(eps)
        a = np.divide(cov, var, out=cov)
        b = np.subtract(mean_p, np.multiply(a, mean_i, out=tmp), out=mean_p)
        mean_a = _box(a, r, self._buf("mean_a", shape))
        mean_b = _box(b, r, self._buf("mean_b", shape))
        # q = mean_a * I + mean_b, then gain * q + offset: fold the affine map in now
        mean_a *= float(gain) if guide_full is None else float(gain) / 255.0  # the full-size guide stays uint8
        cv2.addWeighted(mean_b, float(gain), mean_b, 0.0, float(offset), dst=mean_b)
        if guide_full is None:
            out = cv2.multiply(guide, mean_a, dst=out)
        else:
            h, w = guide_full.shape[:2]
            big_a = cv2.resize(mean_a, (w, h), dst=self._buf("big_a", (h, w)), interpolation=cv2.INTER_LINEAR)
            mean_b = cv2.resize(mean_b, (w, h), dst=self._buf("big_b", (h, w)), interpolation=cv2.INTER_LINEAR)
            out = cv2.multiply(guide_full, big_a, dst=out, dtype=cv2.CV_32F)
        out = cv2.add(out, mean_b, dst=out)
        return clip01(out)


def clip01(x: np.ndarray) -> np.ndarray:
    """Clip a float32 array to [0, 1] in place and return it (OpenCV: about 2x numpy's ``clip``)."""
    cv2.min(x, 1.0, dst=x)
    cv2.max(x, 0.0, dst=x)
    return x


def ramp(threshold: float, softness: float) -> tuple[float, float]:
    """(gain, offset) of the soft threshold's linear ramp: ``alpha = clip(gain * p + offset, 0, 1)``.

    The ramp goes from 0 at ``threshold - softness`` to 1 at ``threshold + softness``;
    ``softness`` must be > 0 (see :func:`soft_threshold` for the hard cut).
    """
    gain = 0.5 / softness
    return gain, -(threshold - softness) * gain


def guided_refine(alpha: np.ndarray, guide: np.ndarray, radius: int, eps: float, out: np.ndarray | None = None) -> np.ndarray:
    """Edge-aware refinement of ``alpha`` at one resolution (the plain guided filter).

    Args:
        alpha: (H, W) float32 in [0, 1].
        guide: (H, W) uint8 luma, same H and W.
        radius: window radius in pixels (>= 1).
        eps: regularisation in [0, 1]-luma units squared (larger = smoother).
        out: optional (H, W) float32 buffer.

    Returns:
        (H, W) float32 in [0, 1].
    """
    luma = guide.astype(np.float32) * (1.0 / 255.0)
    return FastGuidedFilter()(alpha, luma, None, radius, eps, out=out)


def feather(alpha: np.ndarray, sigma_px: float, out: np.ndarray | None = None) -> np.ndarray:
    """Gaussian feather of the matte edge; ``sigma_px`` in pixels (0 = no-op, returns ``alpha``)."""
    if sigma_px <= 0:
        return alpha
    return cv2.GaussianBlur(alpha, (0, 0), float(sigma_px), dst=out)


class TemporalSmoother:
    """Motion-aware exponential moving average of successive masks, against flicker.

    ``update(mask, k, guide)`` returns ``s_t = (1 - w) * mask_t + w * s_{t-1}`` with a
    per-pixel weight ``w = k * clip(1 - motion / MOTION_SCALE, 0, 1)``, where ``motion``
    is the 5x5 box mean of ``|guide_t - guide_{t-1}|``: where the image is still, the
    mask is smoothed with weight ``k`` (flicker of the segmenter on a still edge goes
    away); where the image moved, the new mask is taken as it is (no lag on a moving
    head). Without a guide it is a plain EMA with weight ``k``. A plain EMA lags
    ``k / (1 - k)`` frames on moving edges; the motion gate removes most of that.

    The first frame, a frame of another size, or ``k`` 0 passes the mask through.
    """

    def __init__(self) -> None:
        self._state: np.ndarray | None = None
        self._guide: np.ndarray | None = None
        self._weight: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the previous mask (a new stream)."""
        self._state = None
        self._guide = None

    def update(self, mask: np.ndarray, k: float, guide: np.ndarray | None = None) -> np.ndarray:
        """Blend ``mask`` ((H, W) float32 in [0, 1]) with the previous result.

        Args:
            mask: (H, W) float32 in [0, 1].
            k: weight of the previous mask in [0, 1); 0 = off.
            guide: optional (H, W) float32 luma in [0, 1] of the frame the mask came
                from, for the motion gate.

        Returns:
            (H, W) float32 smoothed mask (an internal buffer, valid until the next call).
        """
        fresh = self._state is None or self._state.shape != mask.shape
        if fresh:
            self._state = np.empty_like(mask)
            self._weight = np.empty_like(mask)
        state, weight = self._state, self._weight
        assert state is not None and weight is not None
        if fresh or k <= 0:
            np.copyto(state, mask)
        elif guide is None or self._guide is None or self._guide.shape != guide.shape:
            cv2.addWeighted(mask, 1.0 - k, state, k, 0.0, dst=state)
        else:
            cv2.absdiff(guide, self._guide, dst=weight)
            _box(weight, 2, weight)
            # w = k * clip(1 - motion / MOTION_SCALE, 0, 1)
            cv2.addWeighted(weight, -k / MOTION_SCALE, weight, 0.0, k, dst=weight)
            cv2.min(weight, float(k), dst=weight)
            cv2.max(weight, 0.0, dst=weight)
            # s = mask + w * (s_prev - mask)
            np.subtract(state, mask, out=state)
            np.multiply(state, weight, out=state)
            np.add(state, mask, out=state)
        if guide is not None:
            if self._guide is None or self._guide.shape != guide.shape:
                self._guide = np.empty_like(guide)
            np.copyto(self._guide, guide)
        return state


def flicker(alphas: list[np.ndarray] | np.ndarray) -> float:
    """Mean |alpha_t - alpha_{t-1}| x 1000 over a sequence of (H, W) mattes in [0, 1].

    The flicker measure of ``shared/notes/platform.md`` (raw selfie masks ~8, RVM ~6.6
    on a talking-head clip). It counts real motion too: compare settings on one clip.
    Returns 0.0 for fewer than two frames.
    """
    if len(alphas) < 2:
        return 0.0
    diffs = [float(np.mean(np.abs(b.astype(np.float32) - a.astype(np.float32)))) for a, b in zip(alphas[:-1], alphas[1:])]
    return 1000.0 * float(np.mean(diffs))


def iou(alpha: np.ndarray, reference: np.ndarray, level: float = 0.5) -> float:
    """Intersection over union of ``alpha > level`` and ``reference > level`` (1.0 when both are empty)."""
    a = alpha > level
    b = reference > level
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)
