"""The selfie segmenter on LiteRT reproduces MediaPipe's own masks.

Reference: ``tests/data/selfie_reference.npz``, what ``mediapipe==0.10.21``'s
``SelfieSegmentation`` returned on carphone frames (at 176x144 and upscaled to 320x240)
and on camera.png, for both models; made by ``tools/make_selfie_reference.py``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from bridge import matte
from bridge.vision.selfie import SelfieSegmenter

REFERENCE = Path(__file__).parent / "data" / "selfie_reference.npz"


@pytest.fixture(scope="module")
def reference():
    with np.load(REFERENCE) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def cases(reference, carphone_frames, camera_png):
    idx = reference["carphone_frames"]
    camera = cv2.cvtColor(cv2.imread(str(camera_png), cv2.IMREAD_GRAYSCALE), cv2.COLOR_GRAY2RGB)
    return {
        "carphone": [carphone_frames[i] for i in idx],
        "carphone320": [cv2.resize(carphone_frames[i], (320, 240), interpolation=cv2.INTER_CUBIC) for i in idx],
        "camera": [camera],
    }


@pytest.mark.parametrize("model", ["landscape", "general"])
def test_litert_selfie_masks_match_mediapipe(model, reference, cases):
    segmenter = SelfieSegmenter(model)
    for case, images in cases.items():
        expected = reference[f"{case}_{model}"].astype(np.float32) / 255.0
        assert len(images) == len(expected)
        for image, ref in zip(images, expected):
            mask = segmenter(image)
            assert mask.shape == image.shape[:2] and mask.dtype == np.float32
            score = matte.iou(mask, ref)
            assert score >= 0.99, f"{case} {model}: IoU {score:.4f} against mediapipe"
            assert float(np.abs(mask - ref).mean()) < 0.005, f"{case} {model}: mean |diff| too large"


def test_stage_segment_uses_the_chosen_model(reference, cases):
    from bridge.stages.alpha import PersonAlphaStage

    image = cases["camera"][0]
    for model in ("landscape", "general"):
        stage = PersonAlphaStage(model=model, threads=2)
        assert matte.iou(stage.segment(image), reference[f"camera_{model}"][0] / 255.0) >= 0.99


def test_unknown_model_is_a_clear_error():
    from bridge.errors import ModelMissingError
    from bridge.stages.alpha import load_selfie_segmenter

    with pytest.raises(ModelMissingError, match="landscape, general"):
        load_selfie_segmenter("portrait")


class _Constant:
    """A segmenter fake with ``raw``'s real contract: (h, w, 3) uint8 and an image-to-input
    affine in, an input-sized (input_height, input_width) float32 mask out."""

    def __init__(self, value: float, width: int, height: int) -> None:
        self.value, self.input_width, self.input_height = value, width, height
        self.shapes: list[tuple[int, int]] = []

    def raw(self, rgb, matrix=None, border=cv2.BORDER_CONSTANT):
        out = np.full((self.input_height, self.input_width), self.value, np.float32)
        self.shapes.append(out.shape)
        return out


def test_zoom_segments_each_window_with_its_own_model_at_its_own_input_size():
    from bridge.vision.selfie import Window

    landscape = SelfieSegmenter("landscape")
    square = _Constant(0.9, 256, 256)
    wide = _Constant(0.2, 256, 144)
    rgb = np.zeros((120, 160, 3), np.uint8)
    out = np.zeros((120, 160), np.float32)
    left, right = Window(40, 60, 40), Window(120, 60, 40)
    landscape.zoom(rgb, [left, right], out, models=[square, wide])
    assert square.shapes == [(256, 256)] and wide.shapes == [(144, 256)]
    assert out[60, 40] == pytest.approx(0.9) and out[60, 120] == pytest.approx(0.2)
    assert out[5, 80] == 0.0  # outside every window the whole-frame mask is kept


def test_a_tracked_persons_window_goes_to_the_square_model_when_the_stage_runs_the_landscape_one():
    # a square window squashed onto the landscape model's 256x144 input loses the person's
    # proportions; the general model's input is square (office case: 0.82 -> 0.85)
    import torch

    from bridge.bench.alpha import STILL_FRAMES, matte_case
    from bridge.stages.alpha import PersonAlphaStage

    frames, _ = matte_case("office")
    for model, expect in (("landscape", True), ("general", False)):
        stage = PersonAlphaStage(model=model)
        calls = []
        for _ in range(STILL_FRAMES):
            general = stage._general_segmenter()
            raw = general.raw
            general.raw = lambda rgb, matrix=None, *a, _raw=raw, **k: (calls.append(matrix is not None), _raw(rgb, matrix, *a, **k))[1]
            stage(video=[torch.from_numpy(frames[0])[None]])
            general.raw = raw
        assert stage._finder.tracks, "the office's people are tracks"
        assert any(calls) == expect, f"{model}: general-model window runs {sum(calls)}"


def test_a_zoom_window_replaces_exactly_its_own_square_of_the_frame():
    """Each window's mask goes back over the whole of its square (up to its edge pixels, on
    every side, wherever it lies, cut by the frame's edge or not) and nowhere else: the frame
    outside every window keeps the whole-frame pass's probability."""
    from bridge.vision.selfie import Window

    class Ones:  # a model that sees a person everywhere in its input
        input_width, input_height = 256, 144

        def raw(self, rgb, matrix=None):
            return np.ones((self.input_height, self.input_width), np.float32)

    segmenter = SelfieSegmenter("landscape")
    h, w = 60, 80
    rgb = np.zeros((2 * h, 2 * w, 3), np.uint8)
    yy, xx = np.mgrid[0:h, 0:w] + 0.5  # pixel centres
    for window in (Window(30.3, 25.7, 21.4), Window(70.6, 50.2, 30.0), Window(5.0, 4.0, 16.0)):
        out = np.zeros((h, w), np.float32)
        segmenter.zoom(rgb, [window], out, 2.0, models=[Ones()])
        r = window.side / 2
        inside = (np.abs(xx - window.cx) <= r - 1) & (np.abs(yy - window.cy) <= r - 1)
        outside = (np.abs(xx - window.cx) >= r + 1) | (np.abs(yy - window.cy) >= r + 1)
        assert inside.any() and out[inside].min() == 1.0, f"{window}: part of its square was not written"
        assert out[outside].max() == 0.0, f"{window}: written outside its square"
