"""One stage instance called from several threads at once (Scope when a session stops and the
next one starts on the same server; the daemon's preset switch while frames of the old chain
are in flight): every call completes and returns what a single thread gets."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from bridge.stages.alpha import PersonAlphaStage
from bridge.stages.passthrough import PassthroughStage
from bridge.stages.pose import PoseStage

THREADS = 4
CALLS = 8


def _alpha(out: dict) -> np.ndarray:
    return out["alpha"].numpy().copy()


def _landmarks(out: dict) -> np.ndarray:
    """The first person's landmarks (x, y px): the skeleton image moves by a pixel as the
    One Euro filter settles, even called from one thread."""
    return out["people"][0][0].landmarks[:, :2].copy()


def _hammer(stage, frame: torch.Tensor, key) -> tuple[list[np.ndarray], list[BaseException]]:
    outputs: list[np.ndarray] = []
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def work() -> None:
        try:
            start.wait()
            for _ in range(CALLS):
                outputs.append(key(stage(video=[frame])))
        except BaseException as exc:  # noqa: BLE001 - every failure is the test's business
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120.0)
    return outputs, errors


@pytest.mark.parametrize("stage_cls, key, tolerance", [(PersonAlphaStage, _alpha, 0.02), (PoseStage, _landmarks, 1.0)])
def test_one_instance_from_several_threads_gives_every_caller_the_single_thread_result(stage_cls, key, tolerance, carphone_frames):
    frame = torch.from_numpy(np.ascontiguousarray(carphone_frames[0]))[None]
    stage = stage_cls()
    for _ in range(30):  # a still scene: the temporal state settles
        stage(video=[frame])
    expected = key(stage(video=[frame]))
    outputs, errors = _hammer(stage, frame, key)
    assert not errors, f"{len(errors)} calls failed, e.g. {errors[0]!r}"
    assert len(outputs) == THREADS * CALLS
    for out in outputs:
        assert out.shape == expected.shape
        assert float(np.abs(out - expected).max()) <= tolerance


def test_a_stage_that_declares_parallel_workers_is_not_serialised():
    stage = PassthroughStage()
    frame = torch.zeros((1, 8, 8, 3), dtype=torch.uint8)
    stage(video=[frame])
    assert stage.__dict__["_call_lock"] is False
    assert isinstance(PersonAlphaStage.__dict__["__call__"], type(lambda: 0)) and PersonAlphaStage.__call__._serialised
