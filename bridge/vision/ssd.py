"""SSD detector arithmetic: anchors, box and keypoint decoding, weighted non-max suppression.

Generic single-shot-detector steps as MediaPipe configures them for its detectors; the
constants of the BlazePose detector are in :mod:`bridge.vision.pose_detector`. Facts from
MediaPipe's calculator options (``mediapipe/calculators/tflite/ssd_anchors_calculator.proto``,
``tensors_to_detections_calculator.proto``, ``mediapipe/calculators/util/
non_max_suppression_calculator.proto``) and the BlazeFace/BlazePose papers (arXiv 1907.05047,
2006.10204: anchors on 8/16/32-stride feature maps, "weighted" blending NMS).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AnchorOptions:
    """The fields of MediaPipe's ``SsdAnchorsCalculatorOptions`` that BlazePose uses.

    Layer ``i`` of ``num_layers`` has scale ``min_scale + (max_scale - min_scale) * i /
    (num_layers - 1)``; consecutive layers with the same stride share one feature map of
    ``ceil(input / stride)`` cells per side. Each layer gives, per cell, one anchor per
    aspect ratio plus one "interpolated" anchor (scale ``sqrt(scale * next_scale)``,
    aspect 1). With ``fixed_anchor_size`` every anchor is 1 x 1 (only its centre matters).
    """

    input_size: tuple[int, int]  # (height, width) in pixels
    strides: tuple[int, ...]
    min_scale: float
    max_scale: float
    anchor_offset: tuple[float, float] = (0.5, 0.5)  # (x, y), in cells
    aspect_ratios: tuple[float, ...] = (1.0,)
    interpolated_scale_aspect_ratio: float = 1.0
    fixed_anchor_size: bool = True


def ssd_anchors(options: AnchorOptions) -> np.ndarray:
    """Anchor boxes of an SSD model, in MediaPipe's order (layer group, row, column, anchor).

    Returns:
        (N, 4) float32: x_center, y_center, width, height, all normalised to [0, 1] of the
        model input. Centres are ``(column + anchor_offset_x) / feature_map_width`` (and the
        same for rows); sizes are 1 with ``fixed_anchor_size``.
    """
    height, width = options.input_size
    num_layers = len(options.strides)

    def scale(i: int) -> float:
        if num_layers == 1:
            return (options.min_scale + options.max_scale) * 0.5
        return options.min_scale + (options.max_scale - options.min_scale) * i / (num_layers - 1)

    rows: list[np.ndarray] = []
    layer = 0
    while layer < num_layers:
        sizes: list[tuple[float, float]] = []  # (w, h) of each anchor of one cell
        last = layer
        while last < num_layers and options.strides[last] == options.strides[layer]:
            s = scale(last)
            for ratio in options.aspect_ratios:
                r = float(np.sqrt(ratio))
                sizes.append((s * r, s / r))
            if options.interpolated_scale_aspect_ratio > 0:
                s_next = 1.0 if last == num_layers - 1 else scale(last + 1)
                s_mid = float(np.sqrt(s * s_next))
                r = float(np.sqrt(options.interpolated_scale_aspect_ratio))
                sizes.append((s_mid * r, s_mid / r))
            last += 1
        stride = options.strides[layer]
        fm_h, fm_w = int(np.ceil(height / stride)), int(np.ceil(width / stride))
        ys, xs = np.meshgrid(np.arange(fm_h), np.arange(fm_w), indexing="ij")
        cx = (xs.reshape(-1, 1) + options.anchor_offset[0]) / fm_w
        cy = (ys.reshape(-1, 1) + options.anchor_offset[1]) / fm_h
        n = len(sizes)
        block = np.empty((fm_h * fm_w, n, 4), np.float32)
        block[..., 0] = cx
        block[..., 1] = cy
        if options.fixed_anchor_size:
            block[..., 2:] = 1.0
        else:
            block[..., 2] = [w for w, _ in sizes]
            block[..., 3] = [h for _, h in sizes]
        rows.append(block.reshape(-1, 4))
        layer = last
    return np.concatenate(rows, axis=0)


def decode(raw: np.ndarray, anchors: np.ndarray, scale: float, num_keypoints: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode an SSD's regressors into boxes and keypoints (MediaPipe ``TensorsToDetections``).

    Args:
        raw: (N, 4 + 2 * num_keypoints) float32, per anchor: x, y, w, h offsets then (x, y)
            per keypoint, in input pixels relative to the anchor ("reverse output order",
            x before y).
        anchors: (N, 4) from :func:`ssd_anchors`.
        scale: the ``x_scale``/``y_scale``/``w_scale``/``h_scale`` option (the input size).
        num_keypoints: keypoints per box.

    Returns:
        ``boxes`` (N, 4) float32 ``xmin, ymin, xmax, ymax`` and ``keypoints``
        (N, num_keypoints, 2) float32, both normalised to [0, 1] of the model input:
        ``centre = raw / scale * anchor_size + anchor_centre``, ``size = raw / scale * anchor_size``.
    """
    ax, ay, aw, ah = (anchors[:, i] for i in range(4))
    cx = raw[:, 0] / scale * aw + ax
    cy = raw[:, 1] / scale * ah + ay
    w = raw[:, 2] / scale * aw
    h = raw[:, 3] / scale * ah
    boxes = np.stack([cx - w * 0.5, cy - h * 0.5, cx + w * 0.5, cy + h * 0.5], axis=1).astype(np.float32)
    kp = raw[:, 4 : 4 + 2 * num_keypoints].reshape(-1, num_keypoints, 2)
    keypoints = np.empty_like(kp, dtype=np.float32)
    keypoints[..., 0] = kp[..., 0] / scale * aw[:, None] + ax[:, None]
    keypoints[..., 1] = kp[..., 1] / scale * ah[:, None] + ay[:, None]
    return boxes, keypoints


def sigmoid_scores(raw: np.ndarray, clip: float) -> np.ndarray:
    """Scores from logits: clipped to ``[-clip, clip]`` (``score_clipping_thresh``), then sigmoid."""
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(raw, np.float64), -clip, clip)))


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of ``box`` (4,) with each of ``boxes`` (N, 4), ``xmin, ymin, xmax, ymax``."""
    ix = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0.0, None)
    iy = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0.0, None)
    inter = ix * iy
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def weighted_nms(
    scores: np.ndarray, boxes: np.ndarray, keypoints: np.ndarray, threshold: float
) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """Weighted non-max suppression (MediaPipe ``NonMaxSuppressionCalculator``, ``WEIGHTED``).

    Repeatedly takes the highest-scoring remaining box; every remaining box whose IoU with it
    is above ``threshold`` (itself included) joins its cluster and is removed; the cluster
    becomes one detection whose box and keypoints are the score-weighted mean of the
    cluster's and whose score is the top box's (BlazeFace paper, section "blending").

    Args:
        scores: (N,) float, boxes: (N, 4), keypoints: (N, K, 2): candidates (already
            thresholded by score).
        threshold: ``min_suppression_threshold`` (IoU).

    Returns:
        A list of ``(score, box (4,), keypoints (K, 2))``, highest score first.
    """
    remaining = np.argsort(-scores, kind="stable")
    out: list[tuple[float, np.ndarray, np.ndarray]] = []
    while remaining.size:
        top = remaining[0]
        joins = iou(boxes[top], boxes[remaining]) > threshold
        joins[0] = True  # the top box always leads its cluster (a degenerate, zero-area one alone)
        cluster = remaining[joins]
        weights = scores[cluster].astype(np.float64)
        total = weights.sum()
        box = (boxes[cluster] * weights[:, None]).sum(axis=0) / total
        kps = (keypoints[cluster] * weights[:, None, None]).sum(axis=0) / total
        out.append((float(scores[top]), box.astype(np.float32), kps.astype(np.float32)))
        remaining = remaining[~joins]
    return out
