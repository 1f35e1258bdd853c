"""The person alpha stage on footage it was never tuned on (issue "Person matte on footage it
was never tuned on"): every person is proposed by some source, segmented where they fill
the model's input, and composited into one matte; colour is not required.

Media: OpenCV's sample data from Debian's ``opencv-doc`` package and bus.jpg
(``bridge.samples``); reference mattes in ``tests/data/mattes`` (docs/reference-matte.md).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from bridge import matte
from bridge.bench.alpha import matte_case, run_case, variant_frames, warmup_frames
from bridge.stages.alpha import PersonAlphaStage


def _people(ref: np.ndarray, min_area: int) -> list[np.ndarray]:
    """The reference's people: masks of its connected regions of at least ``min_area`` pixels."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats((ref > 127).astype(np.uint8), connectivity=8)
    return [labels == i for i in range(1, count) if stats[i, cv2.CC_STAT_AREA] >= min_area]


def _recall(alpha: np.ndarray, person: np.ndarray) -> float:
    return float((alpha[person] > 0.5).mean())


@pytest.fixture(scope="module")
def street():
    """OpenCV's vtest.avi: frames 60-107 (after 60 frames of warm-up), 5-8 pedestrians 40-110 px tall."""
    frames, refs = matte_case("street")
    return warmup_frames("street"), frames, refs


def test_small_people_whom_no_whole_frame_model_sees_are_found_and_matted(street):
    warm, frames, refs = street
    mattes, _ = run_case(PersonAlphaStage(), frames, warm)
    scores = [matte.iou(m, r.astype(np.float32) / 255.0) for m, r in zip(mattes, refs)]
    # 0.764 with the finder's scan on its own thread (0.814 with it on the frame); 0.741
    # without the window-sharing rule below (COVER_FILL)
    assert np.mean(scores) >= 0.75, f"IoU {np.mean(scores):.3f} (the whole-frame models alone: 0.10)"
    # every walker found gets a window soon: a group shares one, so the zoom_windows cap
    # reaches the rest (a window per person, 4 a frame: 0.61 on these first frames, 0.76 now)
    assert np.mean(scores[:10]) >= 0.72, f"IoU {np.mean(scores[:10]):.3f} on the first 10 frames"
    # person by person on the last frames: most walkers taller than 40 px are matted
    found, total = 0, 0
    for m, r in zip(mattes[-10:], refs[-10:]):
        people = [p for p in _people(r, 300)]
        total += len(people)
        found += sum(_recall(m, p) >= 0.5 for p in people)
    assert total >= 30 and found >= 0.75 * total, f"{found} of {total} walkers matted"


def test_without_windows_where_they_fill_the_model_input_they_are_lost(street):
    # the same clip with the person zoom off: the whole-frame pass alone cannot segment
    # people this small, however well they were found
    warm, frames, refs = street
    mattes, _ = run_case(PersonAlphaStage(), frames[-10:], warm + frames[:-10], zoom=False)
    scores = [matte.iou(m, r.astype(np.float32) / 255.0) for m, r in zip(mattes, refs[-10:])]
    assert np.mean(scores) < 0.4, f"IoU {np.mean(scores):.3f} without zoom windows"


def test_the_street_in_grey_is_matted_as_well(street):
    warm, frames, refs = street
    grey = [cv2.cvtColor(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB) for f in warm + frames]
    mattes, _ = run_case(PersonAlphaStage(), grey[len(warm):], grey[:len(warm)])
    scores = [matte.iou(m, r.astype(np.float32) / 255.0) for m, r in zip(mattes, refs)]
    assert np.mean(scores) >= 0.55, f"greyscale street IoU {np.mean(scores):.3f}"


def test_a_close_person_cut_by_the_frame_edge_next_to_a_far_full_length_one_in_grey():
    # basketball1.png: a greyscale office camera; the far man full-length, the close one with
    # his back to the camera, cut by the right and bottom edges (the landscape model alone
    # misses him; the stage before the finder scored 0.30 on this kind of frame)
    frames, refs = matte_case("office")
    alpha = run_case(PersonAlphaStage(), frames)[0][-1]
    ref = refs[0]
    # 0.82 with every window on the landscape model, 0.85 with each tracked person's window
    # on the square (general) one
    assert matte.iou(alpha, ref.astype(np.float32) / 255.0) >= 0.84
    people = sorted(_people(ref, 2000), key=lambda p: -p.sum())
    assert len(people) == 2
    close, far = people
    assert np.nonzero(close)[1].max() == ref.shape[1] - 1, "the close man touches the right edge"
    assert _recall(alpha, close) >= 0.75 and _recall(alpha, far) >= 0.75, \
        f"close man {_recall(alpha, close):.2f}, far man {_recall(alpha, far):.2f} of their pixels matted"


def test_the_same_office_cropped_to_16_9_keeps_the_far_man_whose_feet_are_cut():
    # the office cropped to 16:9 (rows 40-400 of 480: the far man's feet below the frame): the
    # whole-frame pass sees nobody, the pose tracker follows the far man but his pose mask
    # counts only in part (legs out of view), and his box is bigger than zoom_max: he gets a
    # window all the same, or nothing mattes him (0.42 without it)
    frames, refs = matte_case("office")
    frame, ref = np.ascontiguousarray(frames[0][40:400]), refs[0][40:400]
    alpha = run_case(PersonAlphaStage(), [frame])[0][-1]
    people = sorted(_people(ref, 2000), key=lambda p: -p.sum())
    assert len(people) == 2
    far = people[1]
    assert _recall(alpha, far) >= 0.75, f"far man {_recall(alpha, far):.2f} of his pixels matted"
    assert matte.iou(alpha, ref.astype(np.float32) / 255.0) >= 0.6


def _variant_iou(case: str, variant: str) -> float:
    """IoU of the stage (default preset, 30 frames of the still) on one of ``bench alpha
    --variants``' reframings of a still case."""
    from bridge.bench.alpha import variant_frames

    frames, refs = matte_case(case)
    image, ref = {name: (a, b) for name, a, b in variant_frames(frames[0], refs[0])}[variant]
    alpha = run_case(PersonAlphaStage(), [image])[0][-1]
    return matte.iou(alpha, ref.astype(np.float32) / 255.0)


def test_two_people_in_a_wider_frame_are_matted():
    # zidane.jpg widened 1.5x (borders mirrored): the two men make one wide region whose check
    # fails, and the pose detector's hit on a face inside it used to be skipped as that
    # region's person: nothing was matted for the 30 frames
    score = _variant_iou("zidane", "1.5x wide")
    assert score >= 0.7, f"IoU {score:.3f}"


def test_a_letterboxed_picture_keeps_its_black_bars_transparent():
    # zidane.jpg between black bars a sixth of its height (a film's letterbox, TouchDesigner's
    # Fit mode): the selfie models on the whole frame carried the two men, cut by the
    # picture's bottom edge, on into the bar below (IoU 0.70); nobody is in a bar
    frames, refs = matte_case("zidane")
    image, ref = frames[0], refs[0]
    pad = image.shape[0] // 6
    boxed = cv2.copyMakeBorder(image, pad, pad, 0, 0, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    ref = cv2.copyMakeBorder(ref, pad, pad, 0, 0, cv2.BORDER_CONSTANT, value=0)
    alpha = run_case(PersonAlphaStage(), [boxed])[0][-1]
    assert alpha[:pad].max() == 0.0 and alpha[-pad:].max() == 0.0
    score = matte.iou(alpha, ref.astype(np.float32) / 255.0)
    assert score >= 0.9, f"IoU {score:.3f}"
    # the men stay opaque up to the picture's edge (a bar cleared before the guided filter
    # faded them there: 0.80)
    last = alpha[-pad - 1][ref[-pad - 1] > 127]
    assert last.mean() >= 0.95, f"mean alpha {last.mean():.2f} on the picture's last row"


def test_a_pillarboxed_picture_is_matted_as_the_picture_alone():
    # camera.png between black bars a quarter of its width: his black coat, cut by the
    # picture's left edge, ran into the black bar and the models lost it (IoU 0.76, against
    # 0.96 on the picture alone). The stage mattes the picture as a frame of its own
    frames, refs = matte_case("camera")
    image, ref = frames[0], refs[0]
    side = image.shape[1] // 4
    boxed = cv2.copyMakeBorder(image, 0, 0, side, side, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    alpha = run_case(PersonAlphaStage(), [boxed])[0][-1]
    alone = run_case(PersonAlphaStage(), [image])[0][-1]
    assert alpha[:, :side].max() == 0.0 and alpha[:, -side:].max() == 0.0
    assert np.array_equal(alpha[:, side:-side], alone), "the picture's matte depends on its bars"
    score = matte.iou(alpha[:, side:-side], ref.astype(np.float32) / 255.0)
    assert score >= 0.95, f"IoU {score:.3f}"


def test_an_underexposed_or_washed_out_grey_office_keeps_both_men():
    # the greyscale office at a tenth of its levels with sensor noise and JPEG (a dim room, a
    # cheap camera): on the dark frame the models found nobody (IoU 0.00). The stage brightens
    # an underexposed frame for its models (bridge.matte.exposure_levels) and asks its bars to be
    # as much darker: the dark wall on the left read as a pillarbox bar and was cut off (0.41)
    frames, refs = matte_case("office")
    rng = np.random.default_rng(0)
    dark = np.clip(frames[0].astype(np.float32) * 0.1 + rng.normal(0.0, 2.0, frames[0].shape), 0, 255).astype(np.uint8)
    dark = cv2.imdecode(cv2.imencode(".jpg", dark, [cv2.IMWRITE_JPEG_QUALITY, 80])[1], cv2.IMREAD_UNCHANGED)
    alpha = run_case(PersonAlphaStage(), [dark])[0][-1]
    score = matte.iou(alpha, refs[0].astype(np.float32) / 255.0)
    assert score >= 0.7, f"IoU {score:.3f}"
    # the RGB the stage outputs is still the frame's own
    out = PersonAlphaStage()(video=[torch.from_numpy(dark)[None]], alpha_mode="straight")
    assert np.array_equal(np.rint(out["video"][0].numpy() * 255.0).astype(np.uint8), dark)
    # washed out (stage haze: levels 160-224): its levels are stretched from its black point
    # (0.30 as it came)
    hazy = np.clip(frames[0].astype(np.float32) * 0.25 + 160 + rng.normal(0.0, 2.0, frames[0].shape), 0, 255).astype(np.uint8)
    alpha = run_case(PersonAlphaStage(), [hazy])[0][-1]
    score = matte.iou(alpha, refs[0].astype(np.float32) / 255.0)
    assert score >= 0.75, f"washed out: IoU {score:.3f}"


def test_a_footballer_with_limbs_spread_is_not_cut_in_two_windows():
    # messi5.jpg's central 80 %: the footballer's pose box (limbs spread) is wider than 1.3x its
    # height; it was split into two windows like a region of people side by side, each holding
    # half of him (0.79); one person's box gets one window
    score = _variant_iou("messi5", "central 80%")
    assert score >= 0.9, f"IoU {score:.3f}"


def test_a_close_man_seen_from_behind_and_cut_by_two_edges_is_matted_where_the_selfie_model_misses_him():
    # the office's central 80 %: the close man is his back and an arm, cut by the right, top
    # and bottom edges, in grey. The landmark check confirms him, but the selfie model in his
    # window mattes only his hands and the chair beside him (0.44); his own body mask from a
    # renewed check fills him in (person_finder.MATTE_MISSES)
    frames, refs = matte_case("office")
    image, ref = {name: (a, b) for name, a, b in variant_frames(frames[0], refs[0])}["central 80%"]
    alpha = run_case(PersonAlphaStage(), [image])[0][-1]
    close = sorted(_people(ref, 2000), key=lambda p: -p.sum())[0]
    assert np.nonzero(close)[1].max() == ref.shape[1] - 1, "the close man touches the right edge"
    assert _recall(alpha, close) >= 0.7, f"close man {_recall(alpha, close):.2f} of his pixels matted"
    score = matte.iou(alpha, ref.astype(np.float32) / 255.0)
    assert score >= 0.65, f"IoU {score:.3f}"


def test_bus_in_grey_keeps_its_people():
    # bus.jpg in grey: the landscape model finds one of the four people there
    frames, refs = matte_case("bus-grey")
    alpha = run_case(PersonAlphaStage(), frames)[0][-1]
    score = matte.iou(alpha, refs[0].astype(np.float32) / 255.0)
    assert score >= 0.6, f"IoU {score:.3f} (0.26 before the finder)"


def test_grey_full_length_people_without_a_face_to_detect_are_found_in_any_framing():
    # bus.jpg in grey, cropped to 16:9 and widened 1.5x: the pose detector finds none of its
    # people in grey and the whole-frame models see none; the general model on the
    # detector's tile (grey frames only) finds them (0.38 and 0.08 without it)
    crop = _variant_iou("bus-grey", "16:9 crop")
    wide = _variant_iou("bus-grey", "1.5x wide")
    assert crop >= 0.8 and wide >= 0.5, f"16:9 crop {crop:.3f}, 1.5x wide {wide:.3f}"


def test_players_on_a_dark_stage_are_matted_from_the_first_frames_of_the_shot():
    # iscc-samples' band clip: three players full-length under dark blue light, 100 px tall
    # in a letterboxed 352x288 frame; the selfie model sees each one's torso only, and the
    # landmark check on a square around a torso cuts the head and legs (pose flag ~0.3): the
    # wider second look finds them (before it, nothing was matted on the first 9 frames).
    # The stage mattes the picture between the bars (bridge.matte.PictureArea), where this
    # clip scores 0.455, worst frame 0.17; with the models on the whole frame, bars and all, it
    # scored 0.586 / 0.30 (docs/benchmarks.md, "Session 11 round": its path noise is ±0.1)
    frames, refs = matte_case("band")
    mattes, _ = run_case(PersonAlphaStage(), frames, warmup_frames("band"))
    scores = [matte.iou(m, r.astype(np.float32) / 255.0) for m, r in zip(mattes, refs)]
    assert np.mean(scores) >= 0.42 and min(scores) >= 0.15, f"IoU {np.mean(scores):.3f}, worst frame {min(scores):.3f}"


def test_a_cg_figure_keeps_her_hair_do():
    # Megamind (OpenCV's sample clip): a CG woman whose tall hair-do reaches the frame's top;
    # the hair is the top quarter of her reference matte. Her window, cut to her landmarks,
    # left most of it out (0.41 kept); her own matte now grows her box over it (0.57).
    # Far from all of it: the 0.90 IoU is not reached (docs/benchmarks.md)
    frames, refs = matte_case("cg-hair")
    mattes, _ = run_case(PersonAlphaStage(), frames, warmup_frames("cg-hair"))
    scores, hair = [], []
    for m, r in zip(mattes, refs):
        scores.append(matte.iou(m, r.astype(np.float32) / 255.0))
        rows = np.nonzero((r > 127).any(axis=1))[0]
        top = (r > 127)
        top[rows.min() + (rows.max() - rows.min()) // 4:] = False
        hair.append(float((m[top] > 0.5).mean()))
    assert np.mean(scores) >= 0.77, f"IoU {np.mean(scores):.3f}"
    assert np.mean(hair) >= 0.5, f"hair kept {np.mean(hair):.3f}"


def test_a_cg_figure_whom_the_whole_frame_pass_sees_keeps_the_hair_above_her_head():
    # Megamind 160-199 (cg-woman): a CG woman mid-shot, big enough to have no zoom window;
    # the whole-frame pass gives the spiky hair above her head a probability under 0.1 (the
    # top 15 % of her reference matte: 1-3 % kept). The hair window over her head (on scan
    # frames, carried between) brings it back as the temporal smoother lets it in: 60 % by
    # the 12th frame of the shot
    frames, refs = matte_case("cg-woman")
    frames, refs = frames[:12], refs[:12]
    stage = PersonAlphaStage()
    mattes, _ = run_case(stage, frames)
    hair = []
    for m, r in zip(mattes, refs):
        rows = np.nonzero((r > 127).any(axis=1))[0]
        band = slice(rows.min(), rows.min() + int(0.15 * (rows.max() - rows.min())))
        person = r[band] > 127
        hair.append(float((m[band][person] > 0.5).mean()))
    assert stage._hair.runs >= 4, "a hair window on each scan frame"
    assert hair[-1] >= 0.45 and np.mean(hair[-4:]) >= 0.35, f"hair kept {[round(h, 2) for h in hair]}"
    assert np.mean([matte.iou(m, r.astype(np.float32) / 255.0) for m, r in zip(mattes, refs)]) >= 0.80
