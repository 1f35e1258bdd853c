"""Pose stage: an OpenPose-format skeleton of the real person in carphone."""

from __future__ import annotations

import sys
import time
import types
from typing import Any, NamedTuple

import cv2
import numpy as np
import pytest
import torch

from bridge.chain import Chain, StageSlot
from bridge.errors import ModelMissingError
from bridge.frames import Frame
from bridge.stages import get_stage
from bridge.stages.base import BasePipelineConfig, Pipeline
from bridge.stages.pose import COLORS, KEYPOINTS, LIMB_COLORS, BlazePoseBackend, PoseConfig, draw_skeleton, stroke_width

HEAD_AND_SHOULDERS = ["nose", "neck", "r_shoulder", "l_shoulder", "r_eye", "l_eye"]
FRAMES = (0, 30, 60, 90, 119)
# Boxes checked by eye on carphone frames 0, 30, 60, 90 and 119 (176x144): the face (eyes and
# nose) and the shoulders/neck region of the jacket, as (x0, y0, x1, y1) in pixels.
FACE_BOX = (55, 12, 120, 95)
SHOULDER_BOX = (25, 90, 176, 144)


@pytest.fixture(scope="module")
def pose_stage():
    return get_stage("pose")()


def run(stage, rgb, **params):
    return stage(video=[torch.from_numpy(rgb)[None]], **params)


def to_uint8(video: torch.Tensor) -> np.ndarray:
    return np.round(video.numpy() * 255).astype(np.uint8)


def test_keypoints_land_on_the_person(pose_stage, carphone_frames):
    alpha_stage = get_stage("alpha")()
    for i in FRAMES:
        rgb = carphone_frames[i]
        out = run(pose_stage, rgb)
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


def test_head_and_shoulders_inside_hand_checked_boxes(pose_stage, carphone_frames):
    def inside(point, box):
        return box[0] <= point[0] < box[2] and box[1] <= point[1] < box[3]

    for i in FRAMES:
        points = run(pose_stage, carphone_frames[i])["keypoints"][0].numpy()
        for name in ("nose", "r_eye", "l_eye"):
            assert inside(points[KEYPOINTS.index(name)], FACE_BOX), (i, name, points[KEYPOINTS.index(name)])
        for name in ("neck", "r_shoulder", "l_shoulder"):
            assert inside(points[KEYPOINTS.index(name)], SHOULDER_BOX), (i, name, points[KEYPOINTS.index(name)])
        neck, r, l = (points[KEYPOINTS.index(n), :2] for n in ("neck", "r_shoulder", "l_shoulder"))
        np.testing.assert_allclose(neck, (r + l) / 2, atol=1e-3)  # the neck is the shoulders' midpoint


def test_skeleton_uses_openpose_colours_on_black(pose_stage, carphone_frames):
    out = run(pose_stage, carphone_frames[0])
    image = to_uint8(out["video"][0])
    points = out["keypoints"][0].numpy()
    neck, r_shoulder, l_shoulder = points[1, :2], points[2, :2], points[5, :2]
    x, y = np.round((neck + r_shoulder) / 2).astype(int)
    assert tuple(image[y, x]) == (153, 0, 0) == tuple(int(c * 0.6) for c in COLORS[0])  # limb neck -> r shoulder
    x, y = np.round((neck + l_shoulder) / 2).astype(int)
    assert tuple(image[y, x]) == (153, 51, 0)  # limb neck -> l shoulder: (255, 85, 0) at 60 %
    nose = np.round(points[0, :2]).astype(int)
    assert tuple(image[nose[1], nose[0]]) == COLORS[0]  # keypoint 0 in full colour
    assert (image.sum(axis=2) == 0).mean() > 0.8  # black background
    # nothing but the standard colours: no blending, no anti-aliasing
    used = {tuple(c) for c in image.reshape(-1, 3)}
    assert used <= {(0, 0, 0), *COLORS, *LIMB_COLORS}
    assert len(used) >= 8  # head and shoulders: several limbs and points


def test_runtime_params_take_effect_between_calls(pose_stage, carphone_frames):
    thin = run(pose_stage, carphone_frames[5], line_scale=1.0)["video"]
    thick = run(pose_stage, carphone_frames[5], line_scale=3.0)["video"]
    assert (thick.sum(-1) > 0).sum() > 1.5 * (thin.sum(-1) > 0).sum()
    none = run(pose_stage, carphone_frames[5], min_confidence=1.0)
    assert float(none["video"].max()) == 0.0
    assert float(none["keypoints"].abs().max()) == 0.0  # what is not drawn is not reported either


def test_no_person_gives_black_frame(pose_stage):
    out = run(pose_stage, np.full((144, 176, 3), 128, np.uint8))
    assert float(out["video"].max()) == 0.0
    assert float(out["keypoints"].abs().max()) == 0.0


def test_contract_shapes_and_ranges(pose_stage, carphone_frames):
    rgb = carphone_frames[10]
    rgba = np.concatenate([rgb, np.full((144, 176, 1), 255, np.uint8)], axis=2)
    video = [torch.from_numpy(rgb)[None], torch.from_numpy(rgba).float()[None]]  # uint8 RGB, float RGBA
    out = pose_stage(video=video)
    assert out["video"].shape == (2, 144, 176, 3) and out["video"].dtype == torch.float32
    assert 0.0 <= float(out["video"].min()) and float(out["video"].max()) <= 1.0
    assert out["control_video"] is out["video"]
    assert out["keypoints"].shape == (2, 18, 3) and out["keypoints"].dtype == torch.float32
    assert float(out["video"].max()) > 0.5
    with pytest.raises(ValueError, match="video"):
        pose_stage(video=[])


def test_daemon_uint8_path_gives_the_same_skeleton_as_uint8_without_a_float_image(carphone_frames):
    # keep_uint8 (the daemon's chain): the skeleton comes out as uint8, byte for byte the float
    # contract's picture times 255; fresh stages so both see the same tracking history
    stage = get_stage("pose")()
    floats = [run(stage, rgb)["video"] for rgb in carphone_frames[:3]]
    stage = get_stage("pose")()
    bytes_ = [run(stage, rgb, keep_uint8=True) for rgb in carphone_frames[:3]]
    for f, out in zip(floats, bytes_):
        assert out["video"].dtype == torch.uint8 and out["control_video"] is out["video"]
        assert np.array_equal(out["video"].numpy(), to_uint8(f))
        assert int(out["video"].max()) > 100  # a skeleton was drawn
    assert not np.shares_memory(bytes_[0]["video"].numpy(), bytes_[1]["video"].numpy())  # each call a new frame


def test_returned_skeleton_is_not_overwritten_by_the_next_call(pose_stage, carphone_frames):
    first = run(pose_stage, carphone_frames[20])["video"]
    kept = first.clone()
    run(pose_stage, np.zeros((144, 176, 3), np.uint8))
    assert torch.equal(first, kept)


def test_reset_forgets_tracking_and_detection_goes_on(pose_stage, carphone_frames):
    run(pose_stage, carphone_frames[40])
    pose_stage.reset()  # what the chain does when a source restarts
    points = run(pose_stage, carphone_frames[100])["keypoints"][0].numpy()
    assert points[KEYPOINTS.index("neck"), 2] >= 0.5 and points[KEYPOINTS.index("nose"), 2] >= 0.5


def test_chain_hands_the_skeleton_to_later_stages_and_applies_params(carphone_frames):
    class RecorderConfig(BasePipelineConfig):
        pipeline_id = "recorder"
        osc_name = "recorder"

    class Recorder(Pipeline):
        """Records what the chain gives a stage after the pose stage (as the avatar stage gets it)."""

        seen: list[dict[str, Any]] = []

        @classmethod
        def get_config_class(cls):
            return RecorderConfig

        def __call__(self, **kwargs):
            self.seen.append(kwargs)
            return {"video": kwargs["source_video"][0].float() / 255.0}

    recorder = Recorder()
    chain = Chain([StageSlot("pose", get_stage("pose")(), PoseConfig()), StageSlot("recorder", recorder, RecorderConfig())])
    chain.process(Frame(carphone_frames[0], 0, time.perf_counter()))
    assert chain.set_param("pose", "line_scale", 3.0) == 3.0
    chain.process(Frame(carphone_frames[1], 1, time.perf_counter()))
    assert chain.last_error is None
    first, second = recorder.seen
    assert first["control_video"].shape == (1, 144, 176, 3)
    assert torch.equal(first["source_video"][0][0], torch.from_numpy(carphone_frames[0]))  # the camera frame stays
    assert first["keypoints"].shape == (1, 18, 3)
    lit = [int((kw["control_video"][0].sum(-1) > 0).sum()) for kw in (first, second)]
    assert lit[1] > 1.5 * lit[0]  # line_scale 3 reached the stage on the next frame


def test_draw_skeleton_skips_missing_points_and_reuses_its_buffer():
    points = np.zeros((18, 3), np.float32)
    points[2] = (10, 10, 1.0)  # a lone shoulder: no limb, one dot
    buffer = np.full((64, 64, 3), 7, np.uint8)
    image = draw_skeleton(points, 64, 64, out=buffer)
    assert image is buffer
    assert tuple(image[10, 10]) == COLORS[2]
    assert (image.sum(axis=2) > 0).sum() < 20  # the old content is cleared


def test_stroke_width_scales_with_image_size():
    assert stroke_width(512, 512) == 4  # OpenPose's 4 px at 512
    assert stroke_width(480, 640) == 4
    assert stroke_width(1024, 1024) == 8
    assert stroke_width(144, 176) == 1  # never thinner than 1 px
    assert stroke_width(512, 512, scale=2.0) == 8


def test_missing_litert_is_one_line_naming_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # absent LiteRT runtime
    with pytest.raises(ModelMissingError, match=r"pip install 'ai-edge-litert") as err:
        get_stage("pose")()
    assert "\n" not in str(err.value)


def test_old_backend_name_mediapipe_is_the_blazepose_pipeline(carphone_frames):
    stage = get_stage("pose")(backend="mediapipe")  # old presets and OSC messages keep working
    assert isinstance(stage._backend, BlazePoseBackend)
    points = run(stage, carphone_frames[0])["keypoints"][0].numpy()
    assert points[KEYPOINTS.index("nose"), 2] >= 0.5


def test_every_person_is_drawn_and_returned(carphone_frames):
    """Two people side by side: with max_people=2 both skeletons are drawn and both Person records come back."""
    stage = get_stage("pose")()
    pair = np.ascontiguousarray(np.concatenate([carphone_frames[0], carphone_frames[60]], axis=1))  # 144 x 352
    one = run(stage, pair, max_people=1)
    stage.reset()
    two = run(stage, pair, max_people=2)
    assert len(one["people"][0]) == 1 and len(two["people"][0]) == 2
    for person in two["people"][0]:
        assert person.landmarks.shape == (33, 5) and person.mask is not None
    lit = two["video"][0].sum(-1) > 0
    assert bool(lit[:, :176].any()) and bool(lit[:, 176:].any())  # a skeleton on each half
    lit_one = one["video"][0].sum(-1) > 0
    assert not (bool(lit_one[:, :176].any()) and bool(lit_one[:, 176:].any()))
    assert two["keypoints"].shape == (1, 18, 3)


def test_search_levels_param_reaches_the_tracker(carphone_frames, camera_png):
    grey = cv2.resize(cv2.imread(str(camera_png), cv2.IMREAD_GRAYSCALE), (144, 144), interpolation=cv2.INTER_AREA)
    frame = np.ascontiguousarray(np.concatenate([carphone_frames[0], np.repeat(grey[..., None], 3, axis=2)], axis=1))
    stage = get_stage("pose")()
    assert len(run(stage, frame, max_people=2, search_levels=1)["people"][0]) == 1  # the whole frame alone
    stage.reset()
    assert len(run(stage, frame, max_people=2)["people"][0]) == 2  # default 2: tiles find the second person


def test_people_output_passes_through_the_chain_to_later_stages(carphone_frames):
    class SinkConfig(BasePipelineConfig):
        pipeline_id = "people_sink"
        osc_name = "people_sink"

    class Sink(Pipeline):
        seen: list[dict[str, Any]] = []

        @classmethod
        def get_config_class(cls):
            return SinkConfig

        def __call__(self, **kwargs):
            self.seen.append(kwargs)
            return {"video": kwargs["source_video"][0].float() / 255.0}

    chain = Chain([StageSlot("pose", get_stage("pose")(), PoseConfig()), StageSlot("people_sink", Sink(), SinkConfig())])
    chain.process(Frame(carphone_frames[0], 0, time.perf_counter()))
    assert chain.last_error is None
    people = Sink.seen[0]["people"]
    assert len(people) == 1 and len(people[0]) == 1 and people[0][0].landmarks.shape == (33, 5)


@pytest.mark.parametrize("backend", ["openpose", "dwpose"])
def test_controlnet_aux_backend_missing_is_one_line(monkeypatch, backend):
    monkeypatch.setitem(sys.modules, "controlnet_aux", None)  # absent, even where it is installed
    with pytest.raises(ModelMissingError, match="controlnet-aux") as err:
        get_stage("pose")(backend=backend)
    message = str(err.value)
    assert "\n" not in message and "pip install 'controlnet-aux" in message and "backend=blazepose" in message


def test_openpose_backend_reads_controlnet_aux_keypoints(monkeypatch):
    """A fake ``controlnet_aux.open_pose`` shaped like 0.0.10's: normalised keypoints, None = missing."""

    class Keypoint(NamedTuple):
        x: float
        y: float
        score: float = 1.0
        id: int = -1

    class BodyResult(NamedTuple):
        keypoints: list
        total_score: float
        total_parts: int

    class PoseResult(NamedTuple):
        body: BodyResult
        left_hand: Any
        right_hand: Any
        face: Any

    class OpenposeDetector:
        loaded_from: list[str] = []

        @classmethod
        def from_pretrained(cls, pretrained_model_or_path, **kwargs):
            cls.loaded_from.append(pretrained_model_or_path)
            return cls()

        def to(self, device):
            return self

        def detect_poses(self, image, include_hand=False, include_face=False):
            small = [None] * 18
            small[0] = Keypoint(0.1, 0.1)
            big = [None] * 18
            big[1], big[2], big[5] = Keypoint(0.5, 0.5), Keypoint(0.25, 0.5), Keypoint(0.75, 0.5)
            return [PoseResult(BodyResult(small, 1.0, 1), None, None, None),
                    PoseResult(BodyResult(big, 3.0, 3), None, None, None)]

    package = types.ModuleType("controlnet_aux")
    module = types.ModuleType("controlnet_aux.open_pose")
    module.OpenposeDetector = OpenposeDetector
    package.open_pose = module
    monkeypatch.setitem(sys.modules, "controlnet_aux", package)
    monkeypatch.setitem(sys.modules, "controlnet_aux.open_pose", module)

    stage = get_stage("pose")(backend="openpose", model="/models/annotators")
    assert OpenposeDetector.loaded_from == ["/models/annotators"]
    out = stage(video=[torch.zeros((1, 100, 200, 3), dtype=torch.uint8)])
    points = out["keypoints"][0].numpy()
    np.testing.assert_allclose(points[[1, 2, 5]], [[100, 50, 1], [50, 50, 1], [150, 50, 1]])  # the best person, in pixels
    assert float(points[0, 2]) == 0.0 and float(points[3:5].max()) == 0.0
    image = to_uint8(out["video"][0])
    assert tuple(image[50, 75]) == (153, 0, 0) and tuple(image[50, 125]) == (153, 51, 0)


def test_bench_pose_reports_tracking_and_the_model_baseline(capsys):
    """``avatar-bridge bench pose --json``: one detector run for a tracked person, the bare model timed alongside (no timing asserted)."""
    import json

    from bridge.cli import main

    assert main(["bench", "pose", "--sizes", "160x120", "--frames", "3", "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert (result["width"], result["height"], result["frames"], result["detected"]) == (160, 120, 3, 3)
    assert result["detector_runs"] == 1  # found once, then tracked through warm-up and timed frames
    assert result["median_ms"] > 0 and result["model_median_ms"] > 0
