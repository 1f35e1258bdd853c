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
