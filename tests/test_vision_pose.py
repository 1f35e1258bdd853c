"""Our BlazePose pipeline on LiteRT, held to MediaPipe Pose's own results on real frames.

References: ``tests/data/pose_reference_{carphone,camera}.npz``, made by
``tools/make_pose_reference.py`` with ``mediapipe==0.10.21`` (``solutions.pose``,
``model_complexity=1``, video mode, landmark smoothing on); the images are the project's
samples (``bridge.samples``, fetched from PyPI wheels, never committed). MediaPipe's
``presence`` column is not filled by its legacy API and is not compared.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from bridge.vision.blazepose import Person, PoseTracker, paste_masks, same_person, search_tiles
from bridge.vision.one_euro import LowPass, OneEuroFilter, smoothing_factor
from bridge.vision.pose_detector import ANCHOR_OPTIONS, PoseDetector, alignment_roi
from bridge.vision.pose_landmarks import roi_to_affine
from bridge.vision.ssd import decode, ssd_anchors, weighted_nms

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def carphone_reference():
    return np.load(DATA / "pose_reference_carphone.npz")


@pytest.fixture(scope="module")
def camera_reference():
    return np.load(DATA / "pose_reference_camera.npz")


@pytest.fixture(scope="module")
def camera_rgb(camera_png):
    grey = cv2.imread(str(camera_png), cv2.IMREAD_GRAYSCALE)
    return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


# ------------------------------------------------------------------------ against mediapipe
def test_carphone_landmarks_match_mediapipe_over_all_120_frames(carphone_frames, carphone_reference):
    ref = carphone_reference["landmarks"]
    assert carphone_reference["found"].all()
    tracker = PoseTracker()
    errors, vis_errors = [], []
    for t, rgb in enumerate(carphone_frames):
        people = tracker.process(rgb)
        assert len(people) == 1, t
        lm = people[0].landmarks
        errors.append(np.linalg.norm(lm[:, :2] - ref[t, :, :2], axis=1).mean())
        vis_errors.append(np.abs(lm[:, 3] - ref[t, :, 3]).mean())
    short_side = min(carphone_frames[0].shape[:2])
    assert np.mean(errors) <= 0.02 * short_side, np.mean(errors)  # the bar: 2 % of the short side
    assert np.max(errors) <= 0.04 * short_side, np.max(errors)
    # closer still: the same graph, step for step (0.10 px here; 1.36 px with a 7x7 heatmap window)
    assert np.mean(errors) <= 0.5, np.mean(errors)
    assert np.mean(vis_errors) <= 0.05
    assert tracker.detector_runs == 1  # found once, then tracked through the clip


def test_carphone_first_frame_is_mediapipe_to_a_tenth_of_a_pixel(carphone_frames, carphone_reference):
    """The first frame has no smoothing history: detector, ROI, crop and decoding alone."""
    person = PoseTracker().process(carphone_frames[0])[0]
    ref = carphone_reference["landmarks"][0]
    assert np.linalg.norm(person.landmarks[:, :2] - ref[:, :2], axis=1).mean() <= 0.1
    width = carphone_frames[0].shape[1]
    np.testing.assert_allclose(person.landmarks[:, 2], ref[:, 2] * width, atol=1.0)  # z on x's pixel scale
    np.testing.assert_allclose(person.landmarks[:, 3], ref[:, 3], atol=0.01)


def test_detections_the_caller_ran_already_are_not_run_again(carphone_frames):
    """A caller that looked at the detector's hits first (the alpha stage's pose search)
    hands them to ``process``: the detector does not run a second time on that frame, and
    the person found is the same as from a plain ``process``."""
    frame = carphone_frames[0]
    tracker = PoseTracker()
    found = tracker.detect(frame, tracker.search_levels)
    runs = []
    detector = tracker.detector
    tracker.detector = lambda image: runs.append(1) or detector(image)
    person = tracker.process(frame, detections=found)[0]
    assert runs == [], "the detector ran again"
    plain = PoseTracker().process(frame)[0]
    np.testing.assert_allclose(person.landmarks, plain.landmarks, atol=1e-4)


def test_camera_landmarks_and_mask_match_mediapipe(camera_rgb, camera_reference):
    people = PoseTracker().process(camera_rgb)
    assert len(people) == 1
    ref = camera_reference["landmarks"][0]
    error = np.linalg.norm(people[0].landmarks[:, :2] - ref[:, :2], axis=1).mean()
    assert error <= 0.02 * 512, error
    assert np.median(np.linalg.norm(people[0].landmarks[:, :2] - ref[:, :2], axis=1)) <= 0.5
    mask = paste_masks(people, 512, 512)
    assert iou(mask > 0.5, camera_reference["mask"][0] > 127) >= 0.95


def test_carphone_mask_in_the_image_matches_mediapipe(carphone_frames, carphone_reference):
    tracker = PoseTracker()
    scores = []
    for t in range(0, 120, 20):
        tracker.reset()
        people = tracker.process(carphone_frames[t])
        mask = paste_masks(people, 144, 176)
        scores.append(iou(mask > 0.5, carphone_reference["mask"][t] > 127))
    assert min(scores) >= 0.93, scores


def test_person_record_shapes_and_units(carphone_frames):
    person = PoseTracker().process(carphone_frames[0])[0]
    assert isinstance(person, Person)
    assert person.landmarks.shape == (33, 5) and person.landmarks.dtype == np.float32
    assert person.mask.shape == (256, 256) and person.mask.dtype == np.float32
    assert 0.0 <= person.mask.min() and person.mask.max() <= 1.0
    assert person.crop_to_image.shape == (2, 3) and person.crop_to_image.dtype == np.float64
    assert 0.5 <= person.score <= 1.0 and person.track_id == 1
    # the crop's centre maps to the region's centre; landmarks are inside the frame's neighbourhood
    centre = person.crop_to_image @ np.array([128.0, 128.0, 1.0])
    np.testing.assert_allclose(centre, person.roi[:2], atol=1e-3)
    nose = person.landmarks[0, :2]
    assert 0 <= nose[0] < 176 and 0 <= nose[1] < 144
    assert PoseTracker(segmentation=False).process(carphone_frames[0])[0].mask is None


# ------------------------------------------------------------------------ tracking
def test_detector_runs_only_when_tracking_is_lost(carphone_frames):
    tracker = PoseTracker()
    for rgb in carphone_frames[:30]:
        assert len(tracker.process(rgb)) == 1
    assert tracker.detector_runs == 1  # tracked: the detector is not run again
    empty = np.zeros_like(carphone_frames[0])
    assert tracker.process(empty) == []  # the person left
    assert tracker.tracked == 0
    runs = tracker.detector_runs
    assert tracker.process(empty) == [] and tracker.detector_runs == runs + 1  # looking for someone
    people = tracker.process(carphone_frames[30])  # the person is back
    assert len(people) == 1 and tracker.detector_runs == runs + 2
    assert people[0].track_id == 2  # a new track


def test_reset_runs_the_detector_again(carphone_frames):
    tracker = PoseTracker()
    tracker.process(carphone_frames[0])
    tracker.process(carphone_frames[1])
    tracker.reset()
    assert len(tracker.process(carphone_frames[2])) == 1
    assert tracker.detector_runs == 2


def test_empty_frame_has_no_people():
    tracker = PoseTracker()
    for value in (0, 128, 255):
        assert tracker.process(np.full((240, 320, 3), value, np.uint8), max_people=4) == []
    assert tracker.detect(np.zeros((240, 320, 3), np.uint8)) == []
    np.testing.assert_array_equal(paste_masks([], 24, 32), np.zeros((24, 32), np.float32))


def test_two_people_side_by_side_are_both_found_and_tracked(carphone_frames):
    pair = np.ascontiguousarray(np.concatenate([carphone_frames[0], carphone_frames[60]], axis=1))
    tracker = PoseTracker()
    assert len(tracker.detect(pair)) == 2
    assert len(tracker.process(pair, max_people=1)) == 1  # only as many as asked for
    runs = tracker.detector_runs
    people = []
    for _ in range(tracker.redetect_interval + 1):
        people = tracker.process(pair, max_people=2)
    assert len(people) == 2
    assert tracker.detector_runs == runs + 1  # one more look, at a bounded rate
    assert sorted(p.track_id for p in people) == [1, 2]
    left, right = sorted(people, key=lambda p: p.landmarks[0, 0])
    assert left.landmarks[0, 0] < 176 <= right.landmarks[0, 0]  # each nose on its own half
    for _ in range(5):
        people = tracker.process(pair, max_people=2)
    assert len(people) == 2 and tracker.detector_runs == runs + 1  # both tracked: no detector
    mask = paste_masks(people, *pair.shape[:2])
    assert mask[:, :176].max() > 0.9 and mask[:, 176:].max() > 0.9


def test_search_tiles_cover_the_frame_inside_its_bounds():
    assert search_tiles(480, 640, levels=1) == []
    assert search_tiles(480, 640, levels=2) == [(0, 0, 480), (160, 0, 480)]
    assert search_tiles(512, 512, levels=2) == []  # a square frame is its own tile
    level3 = search_tiles(480, 640, levels=3)[2:]
    assert len(level3) == 15 and {side for _, _, side in level3} == {240}
    for x, y, side in search_tiles(1080, 810, levels=3):
        assert 0 <= x and x + side <= 810 and 0 <= y and y + side <= 1080
    covered = np.zeros((480, 640), bool)
    for x, y, side in level3:
        covered[y:y + side, x:x + side] = True
    assert covered.all()


def test_tiles_find_a_person_the_whole_frame_misses(carphone_frames, camera_rgb):
    """carphone next to camera.png: on the whole frame the detector reports only the close-up."""
    small_camera = cv2.resize(camera_rgb, (144, 144), interpolation=cv2.INTER_AREA)
    frame = np.ascontiguousarray(np.concatenate([carphone_frames[0], small_camera], axis=1))  # 144 x 320
    tracker = PoseTracker()
    assert len(tracker.detect(frame, levels=1)) == 1
    assert len(tracker.detect(frame, levels=2)) == 2
    for levels, expected in ((1, 1), (2, 2), (3, 2)):  # level 3's extra detections: the same two people
        tracker = PoseTracker(search_levels=levels)
        counts = [len(tracker.process(frame, max_people=4)) for _ in range(12)]
        assert counts == [expected] * 12, (levels, counts)
    people = tracker.process(frame, max_people=4)
    assert sorted(p.landmarks[0, 0] >= 176 for p in people) == [False, True]  # one on each picture


def test_max_people_is_clamped(carphone_frames):
    tracker = PoseTracker()
    assert len(tracker.process(carphone_frames[0], max_people=0)) == 1
    assert len(tracker.process(carphone_frames[1], max_people=99)) == 1


def test_bad_frame_is_a_value_error():
    with pytest.raises(ValueError, match="uint8"):
        PoseTracker().process(np.zeros((10, 10, 3), np.float32))


# ------------------------------------------------------------------------ geometry
def test_anchor_count_and_layout():
    anchors = ssd_anchors(ANCHOR_OPTIONS)
    assert anchors.shape == (2254, 4)  # 28x28x2 + 14x14x2 + 7x7x6
    np.testing.assert_allclose(anchors[0], [0.5 / 28, 0.5 / 28, 1, 1])
    np.testing.assert_allclose(anchors[1], anchors[0])  # two anchors per cell on the stride-8 map
    np.testing.assert_allclose(anchors[2, :2], [1.5 / 28, 0.5 / 28])
    np.testing.assert_allclose(anchors[1568, :2], [0.5 / 14, 0.5 / 14])
    np.testing.assert_allclose(anchors[1568 + 392, :2], [0.5 / 7, 0.5 / 7])
    np.testing.assert_allclose(anchors[-1, :2], [6.5 / 7, 6.5 / 7])
    assert (anchors[:, 2:] == 1).all()  # fixed anchor size


def test_decode_scales_offsets_by_the_input_size_around_the_anchor():
    anchors = np.array([[0.25, 0.5, 1.0, 1.0]], np.float32)
    raw = np.zeros((1, 12), np.float32)
    raw[0, :4] = (22.4, -44.8, 112.0, 56.0)
    raw[0, 4:6] = (224.0, 0.0)
    boxes, keypoints = decode(raw, anchors, 224.0, 4)
    np.testing.assert_allclose(boxes[0], [0.35 - 0.25, 0.3 - 0.125, 0.35 + 0.25, 0.3 + 0.125], atol=1e-6)
    np.testing.assert_allclose(keypoints[0, 0], [1.25, 0.5], atol=1e-6)
    np.testing.assert_allclose(keypoints[0, 1], [0.25, 0.5], atol=1e-6)


def test_weighted_nms_blends_overlaps_and_keeps_separate_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], np.float32)
    keypoints = np.array([[[0, 0]], [[4, 0]], [[55, 55]]], np.float32)
    scores = np.array([0.9, 0.6, 0.7], np.float32)
    out = weighted_nms(scores, boxes, keypoints, threshold=0.3)
    assert [round(s, 3) for s, _, _ in out] == [0.9, 0.7]  # highest first, the top box's score
    np.testing.assert_allclose(out[0][1], [0.4, 0, 10.4, 10], atol=1e-5)  # 0.9/1.5 and 0.6/1.5 weights
    np.testing.assert_allclose(out[0][2], [[1.6, 0]], atol=1e-5)
    np.testing.assert_allclose(out[1][1], boxes[2])
    # below the IoU threshold nothing is merged
    far = weighted_nms(scores[:2], np.array([[0, 0, 10, 10], [8, 0, 18, 10]], np.float32), keypoints[:2], 0.3)
    assert len(far) == 2


def test_alignment_roi_size_rotation_and_crop_mapping():
    # body upright: the circle point straight above the hips -> no rotation
    cx, cy, w, h, rot = alignment_roi(np.array([100.0, 200.0]), np.array([100.0, 120.0]))
    assert (cx, cy) == (100.0, 200.0) and w == h == pytest.approx(2 * 80 * 1.25)
    assert rot == pytest.approx(0.0)
    # body lying with its head to the right: rotated +90 degrees (clockwise on the image)
    roi = alignment_roi(np.array([100.0, 200.0]), np.array([180.0, 200.0]))
    assert roi[4] == pytest.approx(math.pi / 2)
    affine = roi_to_affine(roi)
    top_centre = affine @ np.array([128.0, 0.0, 1.0])  # the crop's "up" points at the head
    np.testing.assert_allclose(top_centre, [100 + roi[2] / 2, 200.0], atol=1e-6)
    left_centre = affine @ np.array([0.0, 128.0, 1.0])
    np.testing.assert_allclose(left_centre, [100.0, 200 - roi[2] / 2], atol=1e-6)


def test_detector_finds_the_person_where_mediapipe_put_them(carphone_frames, carphone_reference):
    detections = PoseDetector()(carphone_frames[0])
    assert len(detections) == 1 and detections[0].score >= 0.5
    ref = carphone_reference["landmarks"][0]
    mid_shoulder = (ref[11, :2] + ref[12, :2]) / 2  # the detector's keypoint 2
    assert np.linalg.norm(detections[0].keypoints[2] - mid_shoulder) <= 0.05 * 144
    assert detections[0].keypoints[0, 1] > 144  # mid-hip: below this close-up's frame


def test_same_person_test_tells_neighbours_apart():
    a = (100.0, 300.0, 500.0, 500.0, 0.0)
    assert same_person(a, (110.0, 305.0, 480.0, 480.0, 0.1))
    assert not same_person(a, (276.0, 300.0, 500.0, 500.0, 0.0))  # two close-ups side by side


# ------------------------------------------------------------------------ One Euro
def test_one_euro_first_sample_passes_and_slow_motion_is_smoothed():
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0, derivate_cutoff=1.0)
    assert f(np.array([5.0]), 0.0)[0] == 5.0
    out = f(np.array([6.0]), 0.1)[0]
    alpha = 1.0 / (1.0 + (1.0 / (2 * math.pi * 1.0)) / 0.1)  # te = 0.1 s
    assert out == pytest.approx(alpha * 6.0 + (1 - alpha) * 5.0)
    assert smoothing_factor(1.0, 10.0) == pytest.approx(alpha)


def test_one_euro_speed_raises_the_cutoff():
    still = OneEuroFilter(min_cutoff=0.05, beta=0.0)
    fast = OneEuroFilter(min_cutoff=0.05, beta=80.0)
    for f in (still, fast):
        f(np.zeros(1), 0.0)
    a, b = still(np.ones(1) * 10, 1 / 30)[0], fast(np.ones(1) * 10, 1 / 30)[0]
    assert 0 < a < b < 10  # with beta the filter follows a fast move more closely
    # the speed term: dx = 10 * value_scale * 30 / s; low-passed at 1 Hz: cutoff = 0.05 + 80 * |dx_hat|
    ad = smoothing_factor(1.0, 30.0)
    cutoff = 0.05 + 80.0 * ad * 10 * 30
    assert b == pytest.approx(smoothing_factor(cutoff, 30.0) * 10)
    # value_scale makes speed relative: a large object moving 10 px is "slow"
    big = OneEuroFilter(min_cutoff=0.05, beta=80.0)
    big(np.zeros(1), 0.0)
    assert big(np.ones(1) * 10, 1 / 30, value_scale=1 / 500)[0] < b


def test_one_euro_ignores_a_timestamp_that_does_not_advance_and_resets():
    f = OneEuroFilter(min_cutoff=0.05, beta=0.0)
    f(np.array([0.0]), 1.0)
    assert f(np.array([10.0]), 1.0)[0] == 10.0  # returned unchanged, state kept
    assert f(np.array([10.0]), 2.0)[0] == pytest.approx(smoothing_factor(0.05, 1.0) * 10.0)  # smoothing from 0 at 1 Hz
    f.reset()
    assert f(np.array([7.0]), 3.0)[0] == 7.0


def test_low_pass_visibility():
    lp = LowPass(0.1)
    assert lp(np.array([1.0]))[0] == 1.0
    assert lp(np.array([0.0]))[0] == pytest.approx(0.9)


# ------------------------------------------------------------------------ doctor
def test_doctor_reports_litert_and_every_bundled_model():
    from bridge.doctor import check_vision_runtime
    from bridge.vision.runtime import MODELS, runtime_version

    check = check_vision_runtime()
    assert check.ok, check.detail
    assert f"LiteRT {runtime_version()}" in check.detail
    for name in MODELS:
        assert name in check.detail


def test_doctor_names_the_fix_when_litert_or_a_model_is_missing(monkeypatch, tmp_path):
    import bridge.vision.runtime as runtime
    from bridge.doctor import check_vision_runtime

    monkeypatch.setattr(runtime, "MODELS_DIR", tmp_path)  # an install without the model files
    check = check_vision_runtime()
    assert not check.ok and "pose_landmark_full.tflite" in check.detail and "reinstall" in check.fix
    monkeypatch.setattr(runtime, "runtime_version", lambda: None)
    check = check_vision_runtime()
    assert not check.ok and "ai-edge-litert" in check.fix
