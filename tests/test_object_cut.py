"""Object cut: what a person holds (a camera, a tripod) leaves the matte where the selfie model is
unsure and the pose model's body mask says it is not the person; the person, their holes, a
body cut by the frame edge and a second person the pose masks miss stay.

Synthetic probabilities and pose masks (exact geometry), then camera.png for real: the tripod
head under the man's hands goes, the man stays.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from bridge.bench.alpha import default_preset_params, matte_case, run_case
from bridge.stages.alpha import PersonAlphaStage, _framing_weight, follow_motion
from bridge.vision import object_cut
from bridge.vision.blazepose import Person
from bridge.vision.object_cut import ObjectCut, image_shift

H, W = 120, 160
BODY = (60, 20, 40, 90)  # x, y, w, h of the body's box (pixels)


def _texture(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur((rng.random((H, W)) * 255).astype(np.uint8), (5, 5), 0)


def _frame(luma: np.ndarray | None = None) -> np.ndarray:
    luma = _texture() if luma is None else luma
    return np.ascontiguousarray(np.repeat(luma[..., None], 3, axis=2))


def _body_mask(body=BODY) -> tuple[np.ndarray, np.ndarray]:
    """A pose mask of the body (an ellipse filling ``body``) as the landmark model gives it:
    (256, 256) float32 in crop pixels and the crop-to-image affine of a square crop over it."""
    x, y, w, h = body
    side = float(max(w, h))
    crop = np.zeros((256, 256), np.float32)
    cv2.ellipse(crop, (128, 128), (int(128 * w / side), 127), 0, 0, 360, 1.0, -1)
    s = side / 256.0
    matrix = np.array([[s, 0.0, x + w / 2 - side / 2], [0.0, s, y + h / 2 - side / 2]], np.float64)
    return crop, matrix


def _body_prob(body=BODY) -> np.ndarray:
    prob = np.zeros((H, W), np.float32)
    x, y, w, h = body
    cv2.ellipse(prob, (x + w // 2, y + h // 2), (w // 2, h // 2), 0, 0, 360, 1.0, -1)
    return prob


def _cut(prob: np.ndarray, frame: np.ndarray | None = None, below: float = 0.9, body=BODY) -> np.ndarray:
    mask, matrix = _body_mask(body)
    cutter = ObjectCut(lambda: pytest.fail("no landmark run: the person's pose mask covers the region"))
    region = tuple(float(v) for v in body)
    return cutter(_frame() if frame is None else frame, prob, [region], [(region, mask, matrix)], below)


def test_an_unsure_held_object_is_cut_and_the_person_stays():
    prob = _body_prob()
    prob[40:52, 100:118] = 0.7  # a held object sticking out of the body's side
    before = prob.copy()
    out = _cut(prob)
    assert out is prob  # in place
    assert (out[40:52, 103:118] == 0.0).all(), "the held object stays"
    body = before >= 0.99
    assert (out[body] == before[body]).all(), "the person was cut"


def test_a_confident_selfie_pixel_is_never_cut():
    prob = _body_prob()
    prob[40:52, 100:118] = 0.95  # above `below`
    out = _cut(prob.copy())
    assert (out[40:52, 100:118] == 0.95).all()
    # and 0 switches the cut off
    prob[40:52, 100:118] = 0.7
    assert (_cut(prob.copy(), below=0.0) == prob).all()


def test_a_hole_inside_the_person_is_not_cut():
    # an unsure piece enclosed by confident person (the shine on a held helmet) stays: cutting
    # it would riddle the object with holes
    prob = _body_prob()
    prob[30:60, 100:130] = 1.0
    prob[40:50, 110:120] = 0.6
    out = _cut(prob.copy())
    assert (out[40:50, 110:120] == 0.6).all()


def test_a_piece_at_the_frame_edge_or_beyond_the_pose_crop_is_not_cut():
    # a body cut by the frame edge is where the pose model is weakest: a person at the right
    # edge, whose crop runs past the frame, with an unsure piece reaching the edge
    body = (W - 50, 20, 40, 90)  # its square crop (90 px) runs 15 px past the right edge
    prob = _body_prob(body)
    piece = (slice(40, 52), slice(W - 6, W))
    prob[40:52, W - 10:W] = np.maximum(prob[40:52, W - 10:W], 0.7)
    out = _cut(prob.copy(), body=body)
    assert (out[piece] == 0.7).all()
    # the same piece one pixel short of the edge goes
    prob[40:52, W - 1] = 0.0
    out = _cut(prob.copy(), body=body)
    assert (out[40:52, W - 6:W - 1] == 0.0).all()
    # a piece reaching out of the landmark model's crop: it saw only part of it
    x, _, w, _ = BODY
    crop_right = x + w / 2 + max(BODY[2], BODY[3]) / 2
    assert crop_right < W - 10
    prob = _body_prob()
    prob[40:52, 100:int(crop_right) + 5] = 0.7
    out = _cut(prob.copy())
    assert (out[40:52, 100:int(crop_right) + 5] == 0.7).all()


def test_a_second_person_the_pose_masks_miss_is_not_cut():
    # a piece larger than MAX_PIECE of the pose masks' person is more likely a person the
    # tracker does not follow than a held object
    prob = _body_prob()
    body_area = np.count_nonzero(cv2.warpAffine(_body_mask()[0], _body_mask()[1], (W, H)) >= 0.5)
    side = int(np.ceil(np.sqrt(object_cut.MAX_PIECE * body_area))) + 3
    prob[20:20 + side, 104:104 + side] = 0.7
    assert np.count_nonzero(prob == 0.7) > object_cut.MAX_PIECE * body_area
    out = _cut(prob.copy())
    assert (out[20:20 + side, 104:104 + side] == 0.7).all()


def test_the_edge_of_the_person_is_not_trimmed(monkeypatch):
    # the soft edge right next to the pose mask's person (within MARGIN of the frame's long
    # side) stays; a larger margin than the default, so the ring is several pixels wide
    monkeypatch.setattr(object_cut, "MARGIN", 0.05)
    prob = _body_prob()
    x, y, w, h = BODY
    width = int(object_cut.MARGIN * max(H, W)) // 2
    assert width >= 3
    ring = np.zeros((H, W), np.uint8)
    cv2.ellipse(ring, (x + w // 2, y + h // 2), (w // 2 + width, h // 2 + width), 0, 0, 360, 1, -1)
    prob[(ring > 0) & (prob < 1.0)] = 0.5
    out = _cut(prob.copy())
    assert (out[(ring > 0)] == prob[(ring > 0)]).all()
    # beyond the margin, the same soft band is cut
    far = np.zeros((H, W), np.uint8)
    cv2.ellipse(far, (x + w // 2, y + h // 2), (w // 2 + 3 * width, h // 2 + 3 * width), 0, 0, 360, 1, -1)
    band = (far > 0) & (ring == 0)
    band[:55] = False  # a short arc on the right (a whole ring would be too big a piece)
    band[66:] = False
    band[:, :x + w // 2] = False
    prob[band] = 0.5
    out = _cut(prob.copy())
    assert (out[ring > 0] == prob[ring > 0]).all()
    assert (out[band] == 0.0).mean() > 0.5


class _Landmarker:
    """Stands in for PoseLandmarker: records the regions it is run on, answers the body mask."""

    def __init__(self, presence: float = 0.99) -> None:
        self.rois: list[tuple[float, ...]] = []
        self.presence = presence

    def __call__(self, rgb, roi):
        self.rois.append(roi)
        mask, matrix = _body_mask()
        return type("Result", (), {"presence": self.presence, "mask": mask, "crop_to_image": matrix})()


def test_a_region_nobody_covers_gets_a_landmark_run_every_few_frames_and_is_followed():
    landmarker = _Landmarker()
    cutter = ObjectCut(lambda: landmarker)
    region = (float(BODY[0]), float(BODY[1]), float(BODY[2]), float(BODY[3]))
    luma = _texture()
    outs = []
    for i in range(7):
        prob = _body_prob()
        prob[40:52, 100:118] = 0.7
        outs.append(cutter(_frame(luma), prob, [region], [], 0.9, interval=3))
    # one run on frame 0 and one on frame 6 (every CUT_INTERVAL_FACTOR * interval frames)
    assert len(landmarker.rois) == 2 == cutter.runs
    cx, cy, w, h, rotation = landmarker.rois[0]
    assert (cx, cy) == (BODY[0] + BODY[2] / 2, BODY[1] + BODY[3] / 2) and rotation == 0.0
    assert w == h == object_cut.REGION_ROI_SCALE * max(BODY[2], BODY[3])
    assert all((o[40:52, 103:118] == 0.0).all() for o in outs)
    # the scene moves 6 px right between runs: the cut moves with it
    cutter.reset()
    landmarker.rois.clear()
    cutter(_frame(luma), _body_prob(), [region], [], 0.9, interval=3)
    moved = np.roll(luma, 6, axis=1)
    prob = np.roll(_body_prob(), 6, axis=1)
    prob[40:52, 106:124] = 0.7
    out = cutter(_frame(moved), prob, [region], [], 0.9, interval=3)
    assert len(landmarker.rois) == 1, "no run between runs"
    assert (out[40:52, 109:124] == 0.0).all()
    assert (out[prob >= 0.99] == 1.0).all(), "the moved person was cut"


def test_a_wide_region_or_an_unsure_pose_gets_no_cut():
    landmarker = _Landmarker()
    cutter = ObjectCut(lambda: landmarker)
    prob = _body_prob()
    prob[40:52, 100:118] = 0.7
    wide = (10.0, 20.0, 140.0, 90.0)  # several people side by side
    out = cutter(_frame(), prob.copy(), [wide], [], 0.9)
    assert landmarker.rois == [] and (out == prob).all()
    unsure = ObjectCut(lambda: _Landmarker(presence=0.2))
    region = (float(BODY[0]), float(BODY[1]), float(BODY[2]), float(BODY[3]))
    assert (unsure(_frame(), prob.copy(), [region], [], 0.9) == prob).all()


def test_image_shift_finds_a_translation():
    luma = _texture(3)
    moved = np.roll(np.roll(luma, 5, axis=1), -3, axis=0)  # 5 px right, 3 px up
    dx, dy = image_shift(luma, moved, (20.0, 20.0, 100.0, 80.0))
    assert abs(dx - 5) < 0.6 and abs(dy + 3) < 0.6
    # a flat patch has no motion to find
    flat = np.full((H, W), 128, np.uint8)
    assert np.allclose(image_shift(flat, flat, (20.0, 20.0, 100.0, 80.0)), 0.0, atol=1e-3)
    # nor a box under 8 px a side
    assert image_shift(luma, moved, (20.0, 20.0, 6.0, 40.0)) == (0.0, 0.0)


def _person(points: dict[int, tuple[float, float, float]], roi_side: float) -> Person:
    landmarks = np.zeros((33, 5), np.float32)
    landmarks[:, 4] = 1.0
    for index, (x, y, visibility) in points.items():
        landmarks[index, :4] = (x, y, 0.0, visibility)
    return Person(landmarks=landmarks, score=1.0, roi=(160.0, 68.0, roi_side, roi_side, 0.0), mask=None,
                  crop_to_image=np.eye(2, 3, dtype=np.float32), track_id=1)


def test_a_full_length_person_filling_a_wide_frame_counts_as_full_length():
    # 320x136 (a 640x272 street clip at the working size): the cyclist fills the height, so
    # by size alone he looks like a close-up; his knees and ankles are in the frame
    legs = {25: (150.0, 90.0, 0.9), 26: (170.0, 92.0, 0.9), 27: (148.0, 125.0, 0.8), 28: (172.0, 128.0, 0.8)}
    cyclist = _person(legs, roi_side=220.0)
    assert _framing_weight(cyclist, 1.0, 136) == 0.0
    assert _framing_weight(cyclist, 1.0, 136, 136, 320) == 1.0
    # a close-up: the legs are predicted below the frame (and barely visible)
    below = {k: (x, y + 200.0, v) for k, (x, y, v) in legs.items()}
    assert _framing_weight(_person(below, roi_side=220.0), 1.0, 136, 136, 320) == 0.0
    hidden = {k: (x, y, 0.1) for k, (x, y, v) in legs.items()}
    assert _framing_weight(_person(hidden, roi_side=220.0), 1.0, 136, 136, 320) == 0.0


def test_a_kept_person_follows_the_image_motion():
    luma = _texture(5)
    person = _person({0: (60.0, 30.0, 1.0), 23: (80.0, 80.0, 1.0), 28: (90.0, 110.0, 1.0)}, roi_side=100.0)
    person.landmarks[:, :2] = np.where(person.landmarks[:, :2] == 0, 70.0, person.landmarks[:, :2])
    moved = np.roll(luma, 4, axis=1)
    after = follow_motion(person, luma, moved)
    assert after is not person
    assert np.allclose(after.landmarks[:, 0] - person.landmarks[:, 0], 4.0, atol=0.6)
    assert abs(after.crop_to_image[0, 2] - person.crop_to_image[0, 2] - 4.0) < 0.6
    assert abs(after.roi[0] - person.roi[0] - 4.0) < 0.6
    assert follow_motion(person, luma, luma).landmarks[0, 0] == person.landmarks[0, 0]


def test_camera_tripod_head_leaves_the_matte_and_the_man_stays():
    frames, refs = matte_case("camera")
    params = default_preset_params()
    stage = PersonAlphaStage()
    with_cut = run_case(stage, frames, **params)[0][-1]
    without = run_case(stage, frames, **{**params, "object_cut": 0.0})[0][-1]
    head = (slice(300, 340), slice(280, 316))  # the tripod head under the hands (512x512 pixels)
    assert (without[head] > 0.5).mean() > 0.5, "the selfie model takes the tripod head for the man"
    assert (with_cut[head] > 0.5).mean() < 0.1
    man = refs[0] > 127
    assert (with_cut[man] > 0.5).mean() >= (without[man] > 0.5).mean() - 0.005


def test_object_cut_is_a_live_parameter_of_the_stage():
    stage = PersonAlphaStage()
    image = torch.from_numpy(np.ascontiguousarray(matte_case("camera")[0][0]))[None]
    for below in (0.0, 0.5, 1.0):
        alpha = stage(video=[image], object_cut=below)["alpha"]
        assert alpha.shape == (1, 512, 512, 1) and torch.isfinite(alpha).all()
