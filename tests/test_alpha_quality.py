"""Person alpha quality on real video (carphone), against the reference matte.

The reference (``tests/data/carphone_reference_matte.npz``) is a careful per-frame
matte of carphone's first 48 frames made by ``tools/make_reference_matte.py`` with a
different, slower method (MediaPipe general + pose segmentation + face mesh trimap ->
GrabCut, plus hand-placed corrections); ``docs/reference-matte.md`` describes it.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from bridge import matte
from bridge.bench.alpha import load_reference, stage_mattes
from bridge.cli import main

FRAMES = 48


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    ref = load_reference()
    assert ref.shape == (FRAMES, 144, 176) and ref.dtype == bool
    return ref


@pytest.fixture(scope="module")
def stage():
    from bridge.stages.alpha import PersonAlphaStage

    return PersonAlphaStage()


def test_cli_run_on_carphone_writes_48_rgba_pngs_whose_alpha_covers_the_person(carphone, tmp_path, reference, capsys):
    out = tmp_path / "frames"
    code = main(["run", "--source", f"video:{carphone}", "--sink", f"images:{out}", "--max-frames", str(FRAMES),
                 "--stats-every", "0", "--json"])
    assert code == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"frame_{i:06d}.png" for i in range(FRAMES)], "48 frames, none dropped, named by source index"
    scores = []
    for i, name in enumerate(names):
        image = cv2.imread(str(out / name), cv2.IMREAD_UNCHANGED)
        assert image is not None and image.shape == (144, 176, 4) and image.dtype == np.uint8
        scores.append(matte.iou(image[..., 3].astype(np.float32) / 255.0, reference[i]))
    mean, low = float(np.mean(scores)), float(np.min(scores))
    print(f"IoU vs reference over {FRAMES} frames: mean {mean:.4f}, min {low:.4f}")
    assert mean >= 0.85, f"mean IoU {mean:.3f} (min {low:.3f})"
    assert low >= 0.80, f"worst frame IoU {low:.3f}"
    assert '"dropped": 0' in capsys.readouterr().out


def test_temporal_smoothing_cuts_flicker_without_lag(stage, carphone_frames, reference):
    frames = carphone_frames[:FRAMES]
    on = stage_mattes(stage, frames)  # defaults: temporal smoothing on
    off = stage_mattes(stage, frames, temporal=0.0)
    flicker_on, flicker_off = matte.flicker(on), matte.flicker(off)
    assert flicker_on < 0.85 * flicker_off, f"flicker on {flicker_on:.2f} vs off {flicker_off:.2f}"
    # no lag: following the head costs no accuracy against the per-frame reference
    iou_on = np.mean([matte.iou(on[i], reference[i]) for i in range(FRAMES)])
    iou_off = np.mean([matte.iou(off[i], reference[i]) for i in range(FRAMES)])
    assert iou_on >= iou_off - 0.003


def test_refined_matte_stays_off_the_background(stage, carphone_frames, reference):
    # alpha more than 2 px outside the reference person (the striped seat, the window):
    # the guided filter must not paint background texture into the matte
    kernel = np.ones((5, 5), np.uint8)
    mattes = stage_mattes(stage, carphone_frames[:FRAMES], temporal=0.0)
    leak = np.mean([mattes[i][cv2.dilate(reference[i].astype(np.uint8), kernel) == 0].mean() for i in range(FRAMES)])
    hole = np.mean([1.0 - mattes[i][cv2.erode(reference[i].astype(np.uint8), kernel) > 0].mean() for i in range(FRAMES)])
    assert leak < 0.006, f"mean alpha on the background {leak:.4f}"
    assert hole < 0.002, f"mean transparency inside the person {hole:.4f}"
