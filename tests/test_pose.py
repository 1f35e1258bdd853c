"""Pose stage: an OpenPose-format skeleton of the real person in carphone."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from bridge.errors import ModelMissingError
from bridge.stages import get_stage
from bridge.stages.pose import COLORS, KEYPOINTS, draw_skeleton

HEAD_AND_SHOULDERS = ["nose", "neck", "r_shoulder", "l_shoulder", "r_eye", "l_eye"]


@pytest.fixture(scope="module")
def pose_stage():
    return get_stage("pose")()


def run(stage, rgb, **params):
    return stage(video=[torch.from_numpy(rgb)[None]], **params)


def test_keypoints_land_on_the_person(pose_stage, carphone_frames):
    alpha_stage = get_stage("alpha")()
    for i in (0, 30, 60, 90, 119):
        rgb = carphone_frames[i]
        out = run(pose_stage, rgb)
        assert out["video"].shape == (1, 144, 176, 3) and out["video"].dtype == torch.float32
        assert out["keypoints"].shape == (1, 18, 3)
        matte = alpha_stage(video=[torch.from_numpy(rgb)[None]], temporal=0.0)["alpha"][0, ..., 0].numpy() > 0.5
        matte = cv2.dilate(matte.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0  # shoulders sit on the edge
        points = out["keypoints"][0].numpy()
        for name in HEAD_AND_SHOULDERS:
            x, y, conf = points[KEYPOINTS.index(name)]
            assert conf >= 0.5, (i, name)
            yy, xx = min(int(y), 143), min(int(x), 175)
            assert matte[yy, xx], (i, name, x, y)
        # anatomy: eyes above nose above neck; the person's right shoulder is on the image's left
        k = {n: points[KEYPOINTS.index(n)] for n in HEAD_AND_SHOULDERS}
        assert k["r_eye"][1] < k["neck"][1] and k["nose"][1] < k["neck"][1]
        assert k["r_shoulder"][0] < k["neck"][0] < k["l_shoulder"][0]


def test_skeleton_uses_openpose_colours_on_black(pose_stage, carphone_frames):
    out = run(pose_stage, carphone_frames[0])
    image = np.round(out["video"][0].numpy() * 255).astype(np.uint8)
    points = out["keypoints"][0].numpy()
    neck, r_shoulder = points[1, :2], points[2, :2]
    x, y = np.round((neck + r_shoulder) / 2).astype(int)
    assert tuple(image[y, x]) == tuple(int(c * 0.6) for c in COLORS[0])  # limb neck -> right shoulder
    nose = np.round(points[0, :2]).astype(int)
    assert tuple(image[nose[1], nose[0]]) == COLORS[0]  # keypoint 0 in full colour
    assert (image.sum(axis=2) == 0).mean() > 0.8  # black background


def test_runtime_params_take_effect_between_calls(pose_stage, carphone_frames):
    thin = run(pose_stage, carphone_frames[5], line_scale=1.0)["video"]
    thick = run(pose_stage, carphone_frames[5], line_scale=3.0)["video"]
    assert (thick.sum(-1) > 0).sum() > 1.5 * (thin.sum(-1) > 0).sum()
    none = run(pose_stage, carphone_frames[5], min_confidence=1.0)["video"]
    assert float(none.max()) == 0.0


def test_no_person_gives_black_frame(pose_stage):
    out = run(pose_stage, np.full((144, 176, 3), 128, np.uint8))
    assert float(out["video"].max()) == 0.0
    assert float(out["keypoints"][..., 2].max()) == 0.0


def test_draw_skeleton_skips_missing_points():
    points = np.zeros((18, 3), np.float32)
    points[2] = (10, 10, 1.0)  # a lone shoulder: no limb, one dot
    image = draw_skeleton(points, 64, 64)
    assert tuple(image[10, 10]) == COLORS[2]
    assert (image.sum(axis=2) > 0).sum() < 20


def test_controlnet_aux_backend_missing_is_one_line():
    try:
        import controlnet_aux  # noqa: F401
        pytest.skip("controlnet-aux is installed here")
    except ImportError:
        pass
    with pytest.raises(ModelMissingError, match="controlnet-aux") as err:
        get_stage("pose")(backend="dwpose")
    assert "\n" not in str(err.value)
