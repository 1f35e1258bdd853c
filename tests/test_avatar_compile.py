"""Live changes never recompile the avatar's frame graph (issue 12, part 2), checked on the CPU.

``torch.compile`` with a counting backend (``torch._dynamo.testing.CompileCounter``, which
runs the traced graph eagerly: the cheap ``eager`` backend plus a count of the graphs
Dynamo built) stands in for inductor / CUDA graphs: a Python value the frame reads and a
slider moves, or a new input shape, makes Dynamo build another graph, and on a GPU that is
tens of seconds of frozen output. The graph the CPU traces is the one ``acceleration:
cuda-graphs`` captures on CUDA (``StreamEngine._frame``), so "one graph, never rebuilt"
here is what makes one capture valid for every slider value there.

Also here: the SDXL-style fp16 VAE upcast (``force_upcast``) and the IP-Adapter scale applied
as weights (the same result as diffusers' processor scale).

Each of these mutations of ``bridge/avatar/stream.py`` makes a test here fail (run in a copy):
the guidance scale read as a Python float in the step; the ControlNet skipped at scale 0 when
compiled; the stream batch's first frame run at batch 1; the IP-Adapter scale set on diffusers'
processors (a Python float) instead of the ``to_v_ip`` weights; no fp16 VAE upcast; the
IP-Adapter scale applied to ``to_k_ip`` instead of ``to_v_ip``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch._dynamo.testing import CompileCounter

from avatar_models import build_base, build_controlnet, build_ip_adapter, build_taesd
from bridge.avatar.models import load_components
from bridge.avatar.stream import StreamEngine, StreamParams
from bridge.stages.avatar import AvatarConfig, engine_from_components

SIZE = 64


pytestmark = pytest.mark.usefixtures("quiet_dynamo_trace")  # tests/conftest.py


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    for family in ("sd21", "sd15"):
        build_base(root, family)
        build_controlnet(root, family)
    build_taesd(root)
    build_ip_adapter(root)
    return root


def counting_engine(root: Path, base: str, backend=None, **load) -> StreamEngine:
    """An engine for ``base`` on the CPU; compiled with ``backend`` when given."""
    cfg = AvatarConfig(base_model=base, width=SIZE, height=SIZE, **load)
    comps = load_components(cfg.base_model, cfg.controlnet, cfg.vae, cfg.lora, cfg.ip_adapter, models_root=root)
    return engine_from_components(comps, cfg, torch.device("cpu"), torch.float32,
                                  compile_backend=backend, acceleration="compile" if backend is not None else "none")


def frames(count: int = 3) -> list[torch.Tensor]:
    rng = np.random.default_rng(1)
    return [torch.from_numpy(rng.integers(0, 256, (1, 72, 88, 3), dtype=np.uint8)) for _ in range(count)]


def pose_image() -> torch.Tensor:
    control = torch.zeros(1, 72, 88, 3, dtype=torch.uint8)
    control[:, 10:60, 40:50] = 255
    return control


#: every runtime slider, each moved to the ends of its range (the AvatarConfig bounds) and back
SLIDERS = {
    "strength": [0.1, 1.0, 0.5],
    "guidance_scale": [0.0, 20.0, 1.2],
    "delta": [0.0, 2.0],
    "controlnet_conditioning_scale": [0.0, 2.0, 0.0, 0.8],
    "ip_adapter_scale": [0.0, 2.0],
    "seed": [2**31 - 1, 2],
    "seed_blend": [1.0, 0.0],
    "prompt": ["a red robot"],
    "prompt_b": ["a blue dragon"],
    "prompt_blend": [0.5],
    "negative_prompt": ["blurry"],
    "similarity_filter": [True, False],
    "similarity_threshold": [0.5],
}


def move_every_slider(engine: StreamEngine, refs: list[np.ndarray] | None = None) -> int:
    """Run a frame after each slider move; then a reset, a frame without pose and new references. Returns frames run."""
    inputs, control, params, count = frames(), pose_image(), StreamParams(), 0
    for name, values in SLIDERS.items():
        for value in values:
            params = StreamParams(**{**params.__dict__, name: value})
            engine.update(params)
            out = engine(inputs[count % 2], control)
            assert out.shape == (1, SIZE, SIZE, 3)
            count += 1
    engine.reset()  # stream batch starts again: the first frame must not meet a new shape
    engine(inputs[2], control)
    engine(inputs[2], None)  # a frame without a pose image: ControlNet at 0, same graph
    if refs is not None:
        engine.update(params, reference_images=[])  # cleared: zeros of the same shape
        engine(inputs[0], control)
        engine.update(params, reference_images=refs[::-1])  # other images, same count
        engine(inputs[0], control)
    return count + 2


def test_moving_every_slider_after_warmup_never_recompiles(root):
    counter = CompileCounter()
    engine = counting_engine(root, "sd-turbo", counter, steps=2, stream_batch=True, cfg_type="self")
    engine.warmup()
    # the whole frame (TAESD encode, ControlNet, UNet, step, buffer update, TAESD decode) is one graph
    assert counter.frame_count == 1
    ran = move_every_slider(engine)
    assert ran > 20 and counter.frame_count == 1, "a slider or the first stream-batch frame recompiled the frame"


def test_ip_adapter_scale_and_full_cfg_never_recompile(root):
    rng = np.random.default_rng(0)
    refs = [rng.integers(0, 255, (40, 32, 3), dtype=np.uint8) for _ in range(2)]
    counter = CompileCounter()
    engine = counting_engine(root, "dreamshaper-8", counter, ip_adapter="auto", steps=1, cfg_type="full")
    engine.update(StreamParams(), reference_images=refs)  # as loaded with the preset, before live
    engine.warmup()
    assert counter.frame_count == 1
    move_every_slider(engine, refs)
    assert counter.frame_count == 1, "the IP-Adapter scale or the reference images recompiled the frame"


def test_the_compiled_frame_computes_what_the_eager_frame_does(root):
    """Same frames, same slider moves: the compiled engine (ControlNet always run, scale as a tensor,
    first frame by priming the batch) matches the eager one (ControlNet skipped at 0)."""
    compiled = counting_engine(root, "sd-turbo", CompileCounter(), steps=2, cfg_type="self")
    eager = counting_engine(root, "sd-turbo", None, steps=2, cfg_type="self")
    compiled.warmup()
    inputs, control = frames(), pose_image()
    for change in ({}, {"controlnet_conditioning_scale": 0.0}, {"guidance_scale": 3.0, "strength": 0.8}, {"seed": 5}):
        params = StreamParams(prompt="x", **change)
        outs = []
        for engine in (compiled, eager):
            engine.update(params)
            engine.reset()
            outs.append([engine(f, control if i != 1 else None) for i, f in enumerate(inputs)])
        for got, want in zip(*outs):
            torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-3)  # traced vs eager kernels: rounding only


def test_acceleration_auto_is_none_on_the_cpu(root):
    engine = counting_engine(root, "sd-turbo", None, steps=1)
    assert AvatarConfig().acceleration == "auto"
    auto = StreamEngine(unet=engine.unet, vae=engine.vae, scheduler=engine.scheduler, encode_prompt=engine._prompts.encode,
                        width=SIZE, height=SIZE, acceleration="auto")
    assert auto.acceleration == "none" and auto.stream is None
    auto.warmup()  # nothing to compile: a no-op


def test_ip_adapter_scale_as_weights_equals_diffusers_processor_scale(root):
    """The engine scales ``to_v_ip`` instead of the processors' Python-float scale: same UNet output."""
    engine = counting_engine(root, "dreamshaper-8", None, ip_adapter="auto", steps=1)
    unet = engine.unet
    torch.manual_seed(0)
    x = torch.randn(1, 4, SIZE // 8, SIZE // 8)
    t = torch.tensor([500])
    text = torch.randn(1, 77, 768)
    image = [torch.randn(1, 2, engine._image_embed_dim())]

    def run() -> torch.Tensor:
        with torch.no_grad():
            return unet(x, t, encoder_hidden_states=text, added_cond_kwargs={"image_embeds": image}, return_dict=False)[0]

    engine._has_refs = True
    engine.update(StreamParams(ip_adapter_scale=0.7))
    as_weights = run()
    engine.update(StreamParams(ip_adapter_scale=1.0))  # weights back to the loaded ones
    procs = [p for p in unet.attn_processors.values() if hasattr(p, "to_v_ip")]
    assert procs and all(p.scale == [1.0] for p in procs)
    for p in procs:
        p.scale = [0.7]  # what diffusers' set_ip_adapter_scale(0.7) does
    as_diffusers = run()
    for p in procs:
        p.scale = [1.0]
    assert (as_weights - run()).abs().max() > 1e-4  # the scale matters here
    torch.testing.assert_close(as_weights, as_diffusers, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("force_upcast", [True, False])
def test_fp16_full_vae_is_upcast_as_its_config_says(root, force_upcast):
    """SDXL's VAE overflows in float16 (NaN frames); with ``force_upcast`` (SDXL's config) it runs in float32.

    The tiny VAE's decoder input conv is scaled so that its activations exceed float16's range
    (65504), as SDXL's real VAE does on real latents."""
    from diffusers import AutoencoderKL, LCMScheduler, UNet2DConditionModel

    base = root / "stabilityai" / "sd-turbo"
    vae = AutoencoderKL.from_pretrained(base, subfolder="vae", torch_dtype=torch.float16)
    vae.register_to_config(force_upcast=force_upcast)
    with torch.no_grad():
        vae.decoder.conv_in.weight.mul_(3e4)
    unet = UNet2DConditionModel.from_pretrained(base, subfolder="unet", torch_dtype=torch.float16)
    engine = StreamEngine(unet=unet, vae=vae, scheduler=LCMScheduler.from_pretrained(base, subfolder="scheduler"),
                          encode_prompt=lambda text: (torch.zeros(1, 77, 1024), None), width=SIZE, height=SIZE, dtype=torch.float16)
    out = engine(frames(1)[0])
    assert out.dtype == torch.float32 and out.shape == (1, SIZE, SIZE, 3)
    assert bool(torch.isfinite(out).all()) == force_upcast
    assert vae.dtype == (torch.float32 if force_upcast else torch.float16)


def test_a_compiler_that_fails_at_warm_up_leaves_the_engine_streaming_eagerly(root, caplog):
    # inductor / Triton missing or broken on a user's machine: one warning line, no acceleration,
    # the same frames as an engine built without it
    def broken_backend(gm, example_inputs):
        raise RuntimeError("Triton is not installed\n(long compiler log)")

    engine = counting_engine(root, "sd-turbo", backend=broken_backend)
    with caplog.at_level("WARNING", logger="bridge.avatar.stream"):
        engine.warmup()
    assert engine.acceleration == "none"
    assert any("torch.compile failed (" in r.getMessage() and "\n" not in r.getMessage() for r in caplog.records)
    plain = counting_engine(root, "sd-turbo")
    for e in (engine, plain):
        e.update(StreamParams())
    inputs, control = frames(), pose_image()
    torch.testing.assert_close(engine(inputs[0], control), plain(inputs[0], control))
