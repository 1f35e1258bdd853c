"""The avatar engine's threading and CUDA stream rules (issue 20), on the CPU where a CPU can check them.

- One engine driven from two threads (a preset switch reuses the engine while the old station
  thread still streams) gives every frame exactly the single-thread result: the per-engine lock
  keeps one thread's static-input write and frame from interleaving with the other's.
- ``torch.backends.cudnn.benchmark`` is set before the first warm-up frame runs.
- A re-capture after the number of reference images changes runs off the frame thread: frames
  keep coming (eagerly) while it runs, and the new graph is installed at the next frame after.
- On CUDA only (skipped here): the blocking host wait, device tensors from another stream, the
  ``process(host=False)`` hand-back, and the ControlNet-free graph equal to the full one at scale 0.

Mutations checked (each makes a test here fail): the lock removed from ``process``/``__call__``;
``cudnn.benchmark`` set after the warm-up; the re-capture run on the frame thread (``_capture``
in ``_process`` as before).
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from avatar_models import build_base, build_controlnet, build_ip_adapter, build_taesd
from bridge.avatar.models import load_components
from bridge.avatar.stream import StreamEngine, StreamParams
from bridge.stages.avatar import AvatarConfig, engine_from_components

SIZE = 64
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run on the lent machine)")


pytestmark = pytest.mark.usefixtures("quiet_dynamo_trace")  # tests/conftest.py


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    build_base(root, "sd21")
    build_controlnet(root, "sd21")
    build_base(root, "sd15")
    build_taesd(root)
    build_ip_adapter(root)
    return root


def engine(root: Path, base: str = "sd-turbo", device: str = "cpu", backend=None, acceleration=None, **load) -> StreamEngine:
    cfg = AvatarConfig(base_model=base, width=SIZE, height=SIZE, **load)
    comps = load_components(cfg.base_model, cfg.controlnet, cfg.vae, cfg.lora, cfg.ip_adapter, models_root=root)
    return engine_from_components(comps, cfg, torch.device(device), torch.float32, compile_backend=backend,
                                  acceleration=acceleration or ("compile" if backend is not None else "none"))


def frames(count: int) -> list[torch.Tensor]:
    rng = np.random.default_rng(3)
    return [torch.from_numpy(rng.integers(0, 256, (1, SIZE, SIZE, 3), dtype=np.uint8)) for _ in range(count)]


def test_two_threads_on_one_engine_get_the_single_thread_frames(root):
    """Accelerated frames read the engine's static input tensors: two threads must not interleave."""
    eng = engine(root, backend="eager", steps=1)  # compiled: frames go through the static _image_in
    eng.update(StreamParams(prompt="a", strength=0.5, controlnet_conditioning_scale=0.0))
    eng.warmup()
    inputs = frames(6)
    with torch.no_grad():
        expected = [eng.process(eng.prepare(f)).clone() for f in inputs]
    results: dict[int, list[torch.Tensor]] = {0: [], 1: []}
    start = threading.Barrier(2)

    def drive(k: int) -> None:
        start.wait()
        for i in range(12):
            idx = (2 * i + k) % len(inputs)
            results[k].append((idx, eng.process(eng.prepare(inputs[idx])).clone()))

    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: interleavings show up at once
    try:
        threads = [threading.Thread(target=drive, args=(k,)) for k in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(before)
    wrong = [(k, idx) for k in (0, 1) for idx, out in results[k] if not torch.equal(out, expected[idx])]
    assert not wrong, f"frames that got another thread's input: {wrong}"


def test_cudnn_benchmark_is_set_before_the_first_warmup_frame(root):
    eng = engine(root, backend="eager", steps=1)
    seen: list[bool] = []
    frame = eng._frame_fn

    def spy(*args):
        seen.append(torch.backends.cudnn.benchmark)
        return frame(*args)

    eng._frame_fn = spy
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False
    try:
        eng.warmup()
    finally:
        torch.backends.cudnn.benchmark = before
    assert seen and all(seen), "warm-up frames ran before cudnn.benchmark was set"


def test_a_new_reference_count_recaptures_off_the_frame_thread(root, monkeypatch):
    """A live stream gets frames while the re-capture runs; the new graphs are installed after it ends.

    CUDA graphs cannot be captured on a CPU: the capture is replaced by one that waits until the
    test lets it go and returns a stand-in graph (replaying the engine's own frame on its static
    inputs). What is checked is the engine's side: who waits for whom.
    """
    eng = engine(root, base="dreamshaper-8", ip_adapter="auto", controlnet="", steps=1)
    eng.update(StreamParams(prompt="a", ip_adapter_scale=0.6))
    ref = np.full((32, 32, 3), 128, np.uint8)
    eng.update(StreamParams(prompt="a", ip_adapter_scale=0.6), reference_images=[ref])
    # the state after a warm-up on CUDA with one reference image (a graph captured)
    eng.acceleration, eng._warm = "cuda-graphs", True
    release, capturing = threading.Event(), threading.Event()

    class StandInGraph:
        def __init__(self) -> None:
            self.out = torch.zeros(1, SIZE, SIZE, 3)
            self.replays = 0

        def replay(self) -> None:
            self.replays += 1
            self.out.copy_(eng._frame(eng._image_in, eng._control_in))

    graph = StandInGraph()

    def capture(stream):
        capturing.set()
        assert release.wait(timeout=600)
        return graph, graph.out, None, None

    monkeypatch.setattr(eng, "_capture_graphs", capture)
    eng._graph, eng._graph_out = StandInGraph(), torch.zeros(1, SIZE, SIZE, 3)
    eng.update(StreamParams(prompt="a", ip_adapter_scale=0.6), reference_images=[ref, ref])  # 1 -> 2 images
    assert eng._graph is None
    src = frames(1)[0]
    outputs = []
    worker = threading.Thread(target=lambda: outputs.extend(eng(src) for _ in range(3)), daemon=True)
    worker.start()
    worker.join(timeout=300)
    still_frozen = worker.is_alive()
    release.set()  # let the capture end whatever happened, so no thread is left waiting
    worker.join(timeout=300)
    assert not still_frozen, "the frame thread waited for the re-capture"
    assert capturing.is_set() and len(outputs) == 3
    eng._recapture.join(timeout=60)
    eng(src)  # the next frame installs the finished capture
    assert eng._graph is graph and graph.replays == 1


# ----------------------------------------------------------------- CUDA only (the lent machine)
@cuda
def test_blocking_wait_and_process_hand_back_on_cuda(root):
    eng = engine(root, device="cuda", acceleration="cuda-graphs", steps=1, controlnet="openpose")
    eng.update(StreamParams(prompt="a"))
    eng.warmup()
    out = eng(frames(1)[0])
    assert eng.done is not None and eng.done.query() and out.device.type == "cpu"
    other = torch.cuda.Stream()
    with torch.cuda.stream(other):
        image = eng.prepare(frames(1)[0].cuda())  # a device tensor made on another stream
        dev = eng.process(image)
        copy = dev.clone()  # on `other`: ordered after the frame by the hand-back
    other.synchronize()
    assert torch.equal(copy, dev)


@cuda
def test_controlnet_free_graph_equals_the_full_graph_at_scale_zero(root):
    src = frames(1)[0]
    outs = []
    for free in (True, False):
        eng = engine(root, device="cuda", acceleration="cuda-graphs", steps=1, controlnet="openpose")
        eng.controlnet_free_graph = free
        eng.update(StreamParams(prompt="a"))
        eng.warmup()
        assert (eng._graph_no_cn is not None) == free
        outs.append(eng(src))
    torch.testing.assert_close(outs[0], outs[1], atol=2e-3, rtol=0)
