"""The frame that travels through the engine.

Pixels stay numpy uint8 HWC from the source to the sink; stages see them as torch
tensors (zero-copy ``torch.from_numpy``). Times are ``time.perf_counter()`` seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Frame:
    """One video frame.

    Attributes:
        image: (H, W, 3) uint8 RGB from a source, or (H, W, 4) uint8 RGBA for a sink
            (straight or premultiplied alpha, as the alpha stage was told).
        index: source frame index (0-based; a looping file keeps counting).
        t_capture: perf_counter() seconds when the source produced the frame.
        pts: presentation time in seconds within the source, when known.
        stage_ms: per-stage processing time in ms, filled by the engine.
    """

    image: np.ndarray
    index: int
    t_capture: float
    pts: float | None = None
    stage_ms: dict[str, float] = field(default_factory=dict)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])
