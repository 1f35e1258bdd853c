"""The avatar engine's numbers against an independent computation (diffusers' own schedulers and pipelines).

The engine (bridge/avatar/stream.py, loaded through bridge/stages/avatar.py and
bridge/avatar/models.py) runs on tiny random-weight models (tests/avatar_models.py) at
64x64 with fixed noise. The same UNet / ControlNet / VAE / text and image encoders are then
run by diffusers' own code, fed the same input frame, the same noise and the same timesteps;
every UNet input (latent and timestep), the latent handed to the VAE decoder and the decoded
frame must agree:

* SD-Turbo, 1 step, TAESD: ``StableDiffusionImg2ImgPipeline`` with the scheduler SD-Turbo
  ships (``EulerDiscreteScheduler``, trailing spacing). One Euler step to sigma 0 gives the
  x0 prediction; the engine's LCM boundary condition adds ``c_skip(t) * x_t`` with
  ``c_skip <= 7e-6`` on its 50-step grid (t >= 19), far inside the tolerance.
* SD-Turbo, 2 steps, OpenPose ControlNet, stream batch: ``StableDiffusionControlNetImg2ImgPipeline``
  with Euler, run once per step: step 1 at t0 gives x0 (``output_type="latent"``), step 2
  re-noises it with Euler's own ``add_noise`` at t1 (the pipeline takes latents as its image)
  and denoises -- multistep consistency sampling with Euler's primitives. After warm-up,
  frame k out of the stream batch equals this reference for frame k and the engine run on
  frame k alone. One pose image serves all frames here: in the batch the engine steers every
  frame in flight with the newest frame's pose image, so with a moving pose the later steps of
  frame k follow the pose of frame k+1 (by design, one ControlNet image per UNet call).
* SD 1.5 + LCM-LoRA, 2 steps, full VAE (scaling factor 0.18215), OpenPose ControlNet,
  IP-Adapter with two reference images, ``cfg_type="full"`` with a negative prompt:
  ``StableDiffusionControlNetImg2ImgPipeline`` with ``LCMScheduler`` (its ``step()`` re-noises
  between steps) and ``guidance_scale > 1`` (diffusers gives the unconditional half a zero
  IP-Adapter image embedding).
* SD 1.5 + LCM-LoRA, 3 steps, ``cfg_type="self"`` (residual CFG), stream batch: a loop over
  ``LCMScheduler.step()`` where the unconditional prediction is the virtual residual noise of
  StreamDiffusion (arXiv 2312.12491, section 3.3): the noise that takes the frame's own input
  latent to x_t, computed with the scheduler's ``add_noise`` -- at the first step exactly the
  noise that was put in. Checked on the warm-up frame and on frames coming out of the batch.
* v-prediction (an SD 2.1 768-v style scheduler config), 2 steps: the Euler pipeline chain,
  whose v-prediction conversion is diffusers'.
* SDXL-Turbo, 1 step, TAESDXL: ``StableDiffusionXLImg2ImgPipeline`` (pooled text embedding and
  time ids). SDXL-Turbo ships ``EulerAncestralDiscreteScheduler``; for one step to sigma 0 it
  adds no noise and equals ``EulerDiscreteScheduler``, used here because only that one takes
  custom timesteps.

Tolerances (float32, CPU): latents ``LATENT_ATOL`` = 1e-4 absolute (latents are of order 1);
decoded frames ``FRAME_ATOL`` = 5e-4 on [0, 1] (a tenth of a uint8 level). Measured on this
machine: UNet-input latents differ by at most 9e-6, decoder-input latents by 2e-5, frames by
9e-5 (the tiny random decoders amplify latent rounding about tenfold). Every listed mutation
moves them by orders of magnitude more.

How the reference is fed: the engine's noise is replaced after ``update()`` by
:func:`fix_noise` (the engine has no public hook for it; it sets ``engine._noise``), and
diffusers' ``randn_tensor`` is replaced in the pipeline and scheduler modules by
:func:`fed_noise`, which hands out the same tensors in order. The engine encodes with the full VAE's posterior
mode, diffusers' img2img samples the posterior: its draw is fed zeros, which makes the sample
the mode (TAESD is deterministic). Timesteps are the LCM 50-step
grid at the engine's ``t_indices``; the reference scheduler is pinned to them by
:func:`pin_timesteps`.

Mutations of bridge/avatar/stream.py that these tests catch (each applied to a private copy of the
tree and run against this module; the script is in the issue 12 report). Tests: T1 sd_turbo_one_step,
T2 sd_turbo_two_steps, T3 sd_turbo_stream_batch, L1 lcm_two_steps_full_cfg, L2 lcm_residual_cfg_self,
V v_prediction, X sdxl_turbo.

1. the sign of eps in the x0 step (``x - b * eps`` -> ``x + b * eps``): all seven;
2. the latent scaling factor: 1.0 instead of the full VAE's 0.18215: L1, V; a wrong TAESD
   latent scale (0.18215 for ``AutoencoderTiny``, whose factor is 1.0): T1, T2, T3, L2, X;
3. ``c_skip`` swapped with ``c_out``: all seven;
4. the residual-CFG residual (``(x - a * x0_ref) / b`` -> ``(x - x0_ref) / b``): L2;
5. the v-prediction conversion (``b * x + a * v`` -> ``a * x + b * v``): V;
6. the stream-batch roll order: in-flight latents taken from ``denoised[1:]`` instead of
   ``denoised[:-1]``: T2, T3, L2; in-flight reference latents from ``refs[1:]``: L2;
7. the control image range: [-1, 1] instead of [0, 1]: T2, T3, L1; a uint8 pose image not
   divided by 255: T2;
8. the zero unconditional IP-Adapter embedding (the reference images' embedding on both halves): L1.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import torch

from avatar_models import build_all, build_base, build_taesd
from bridge.avatar.stream import params_from
from bridge.stages.avatar import AvatarConfig, AvatarStage

SIZE = 64
LATENT_ATOL = 1e-4
FRAME_ATOL = 5e-4
PROMPT = "a knight in silver armour"
NEGATIVE = "blurry"


# ----------------------------------------------------------------------------- models and inputs
@pytest.fixture(scope="module")
def models_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_all(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def images(carphone_frames: list[np.ndarray]) -> list[np.ndarray]:
    """Five carphone frames, centre-cropped square and resized to 64x64: (64, 64, 3) uint8 RGB."""
    import cv2

    return [cv2.resize(np.ascontiguousarray(carphone_frames[i][:, 16:160]), (SIZE, SIZE), interpolation=cv2.INTER_AREA)
            for i in (0, 30, 60, 90, 119)]


@pytest.fixture(scope="module")
def control() -> np.ndarray:
    """A pose-like ControlNet image, (64, 64, 3) uint8: black, one white and one mid-grey limb."""
    img = np.zeros((SIZE, SIZE, 3), np.uint8)
    img[8:56, 28:34] = 255
    img[20:26, 10:54] = 128
    return img


@pytest.fixture(scope="module")
def ref_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two IP-Adapter reference images (random RGB PNGs)."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("refs")
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (40, 32, 3), dtype=np.uint8)).save(folder / f"ref{i}.png")
    return folder


def make_noise(steps: int, seed: int = 1234) -> torch.Tensor:
    """The fixed noise: one (4, 8, 8) latent per step, (steps, 4, 8, 8) float32."""
    return torch.randn((steps, 4, SIZE // 8, SIZE // 8), generator=torch.Generator().manual_seed(seed))


def stage_of(models_root: Path, **load: Any) -> AvatarStage:
    return AvatarStage(device="cpu", models_dir=str(models_root), width=SIZE, height=SIZE, **load)


# ----------------------------------------------------------------------------- plumbing
class Recorder:
    """Every UNet input row (latent (1, 4, h, w), timestep) and every latent handed to the VAE decoder while open."""

    def __init__(self) -> None:
        self.unet_rows: list[tuple[torch.Tensor, int]] = []
        self.decode_in: list[torch.Tensor] = []


@contextlib.contextmanager
def recording(unet: torch.nn.Module, vae: Any) -> Iterator[Recorder]:
    rec = Recorder()

    def on_unet(module: Any, args: tuple, kwargs: dict) -> None:
        sample = args[0] if args else kwargs["sample"]
        t = torch.as_tensor(args[1] if len(args) > 1 else kwargs["timestep"]).reshape(-1)
        ts = t.expand(sample.shape[0]) if t.numel() == 1 else t
        rec.unet_rows += [(sample[i:i + 1].detach().clone(), int(ts[i])) for i in range(sample.shape[0])]

    decode = vae.decode

    def on_decode(z: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        rec.decode_in.append(z.detach().clone())
        return decode(z, *args, **kwargs)

    handle = unet.register_forward_pre_hook(on_unet, with_kwargs=True)
    vae.decode = on_decode
    try:
        yield rec
    finally:
        handle.remove()
        del vae.decode


_NOISE_MODULES = (
    "diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_img2img",
    "diffusers.pipelines.controlnet.pipeline_controlnet_img2img",
    "diffusers.pipelines.stable_diffusion_xl.pipeline_stable_diffusion_xl_img2img",
    "diffusers.schedulers.scheduling_lcm",
)


@contextlib.contextmanager
def fed_noise(noises: list[torch.Tensor]) -> Iterator[None]:
    """diffusers' ``randn_tensor`` hands out ``noises`` in order (and all of them must be used); the full
    VAE's posterior draw is zero."""
    import importlib

    queue = list(noises)

    def randn_tensor(shape: Any, generator: Any = None, device: Any = None, dtype: Any = None, layout: Any = None) -> torch.Tensor:
        assert queue, "diffusers asked for more noise than the engine used"
        noise = queue.pop(0)
        assert tuple(shape) == tuple(noise.shape), (shape, noise.shape)
        return noise.to(device=device, dtype=dtype)

    def posterior_draw(shape: Any, generator: Any = None, device: Any = None, dtype: Any = None, layout: Any = None) -> torch.Tensor:
        return torch.zeros(shape, device=device, dtype=dtype)

    with pytest.MonkeyPatch.context() as mp:
        for name in _NOISE_MODULES:
            mp.setattr(importlib.import_module(name), "randn_tensor", randn_tensor)
        # the engine encodes with the VAE posterior's mode (deterministic); diffusers' img2img samples
        # it (mean + std * draw): a zero draw makes the sample the mode
        mp.setattr(importlib.import_module("diffusers.models.autoencoders.vae"), "randn_tensor", posterior_draw)
        yield
    assert not queue, f"{len(queue)} noise tensors were not used by diffusers"


def fix_noise(engine: Any, noise: torch.Tensor) -> None:
    """Put ``noise`` into the engine's per-step noise (set from the seed by ``update``), in place.

    The engine has no public hook for this; it reads ``engine._noise`` (steps, 4, h, w) every frame."""
    assert tuple(engine._noise.shape) == tuple(noise.shape), engine._noise.shape
    engine._noise.copy_(noise)


def pin_timesteps(scheduler: Any, timesteps: list[int]) -> Any:
    """Make ``scheduler.set_timesteps(n)`` (as the pipelines call it) set exactly ``timesteps``."""
    original = scheduler.set_timesteps

    def set_timesteps(num_inference_steps: Any = None, device: Any = None, **_: Any) -> None:
        assert num_inference_steps in (None, len(timesteps))
        original(timesteps=list(timesteps), device=device)

    scheduler.set_timesteps = set_timesteps
    return scheduler


def grid_timesteps(stage: AvatarStage) -> list[int]:
    """The engine's timesteps: diffusers' LCM 50-step schedule at the engine's ``t_indices``."""
    from diffusers import LCMScheduler

    sched = LCMScheduler.from_config(stage.pipe.scheduler.config)
    sched.set_timesteps(50)
    return [int(sched.timesteps[i]) for i in stage.engine.t_indices]


def run_engine(stage: AvatarStage, frames: list[np.ndarray], noise: torch.Tensor, control: torch.Tensor | None = None,
               **params: Any) -> tuple[list[torch.Tensor], list[Recorder]]:
    """Reset, fix the noise, feed ``frames`` through the stage -> outputs (1, H, W, 3) [0, 1], one record per frame."""
    runtime = {**AvatarConfig(width=SIZE, height=SIZE).runtime_params(), "prompt": PROMPT, **params}
    stage.reset()
    stage.engine.update(params_from(runtime))
    fix_noise(stage.engine, noise)
    outs, recs = [], []
    for frame in frames:
        f = torch.from_numpy(frame)[None]
        with recording(stage.engine.unet, stage.engine.vae) as rec:
            outs.append(stage(video=[f], source_video=[f], control_video=control, **runtime)["video"].clone())
        recs.append(rec)
    return outs, recs


class Reference:
    """The stage's models loaded again, apart from the stage (``load_components``, as users load them), run by
    diffusers' own pipelines: nothing the engine does to its models (IP-Adapter scale, memory format) reaches it."""

    def __init__(self, stage: AvatarStage, root: Path, **load: Any) -> None:
        from bridge.avatar.models import load_components

        cfg = AvatarConfig(width=SIZE, height=SIZE, **load)
        self.comps = load_components(cfg.base_model, cfg.controlnet, cfg.vae, cfg.lora, cfg.ip_adapter, models_root=root)
        self.base = stage.sources["base"]

    def scheduler(self, cls_name: str) -> Any:
        """The model folder's own scheduler config, as ``cls_name`` (EulerDiscreteScheduler / LCMScheduler)."""
        import diffusers

        return getattr(diffusers, cls_name).from_pretrained(self.base, subfolder="scheduler")

    def pipe(self, scheduler: Any, kind: str = "img2img") -> Any:
        """A diffusers pipeline of ``kind`` (img2img | controlnet | sdxl) around the reference models."""
        from diffusers import StableDiffusionControlNetImg2ImgPipeline, StableDiffusionImg2ImgPipeline, StableDiffusionXLImg2ImgPipeline

        p = self.comps.pipe
        common = {"vae": p.vae, "text_encoder": p.text_encoder, "tokenizer": p.tokenizer, "unet": p.unet, "scheduler": scheduler}
        if kind == "sdxl":
            pipe = StableDiffusionXLImg2ImgPipeline(**common, text_encoder_2=p.text_encoder_2, tokenizer_2=p.tokenizer_2,
                                                    requires_aesthetics_score=False, force_zeros_for_empty_prompt=False)
        elif kind == "controlnet":
            pipe = StableDiffusionControlNetImg2ImgPipeline(**common, controlnet=self.comps.controlnet, safety_checker=None,
                                                            feature_extractor=p.feature_extractor, image_encoder=p.image_encoder,
                                                            requires_safety_checker=False)
        else:
            pipe = StableDiffusionImg2ImgPipeline(**common, safety_checker=None, feature_extractor=p.feature_extractor,
                                                  image_encoder=p.image_encoder, requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def euler_chain(self, kind: str, image: np.ndarray, timesteps: list[int], noise: torch.Tensor,
                    **kwargs: Any) -> tuple[torch.Tensor, Recorder]:
        """Multistep consistency sampling with diffusers' Euler scheduler: per step, one Euler step to
        sigma 0 (the x0 prediction), then Euler's ``add_noise`` at the next timestep (the pipeline takes
        the latents as its image). -> frame (1, H, W, 3) [0, 1], record."""
        rec = Recorder()
        latents: Any = pil(image)
        for i, t in enumerate(timesteps):
            last = i == len(timesteps) - 1
            pipe = self.pipe(self.scheduler("EulerDiscreteScheduler"), kind)
            latents = run_pipe(pipe, latents, [t], [noise[i:i + 1]], rec, prompt=PROMPT, guidance_scale=1.0,
                               output_type="pt" if last else "latent", **kwargs)
        return latents.permute(0, 2, 3, 1), rec


def run_pipe(pipe: Any, image: Any, timesteps: list[int], noises: list[torch.Tensor], rec_into: Recorder,
             **kwargs: Any) -> Any:
    """One diffusers img2img call over exactly ``timesteps`` with ``noises`` as its random draws."""
    pin_timesteps(pipe.scheduler, timesteps)
    with fed_noise(noises), recording(pipe.unet, pipe.vae) as rec, torch.no_grad():
        out = pipe(image=image, num_inference_steps=len(timesteps), strength=1.0, **kwargs).images
    rec_into.unet_rows += rec.unet_rows
    rec_into.decode_in += rec.decode_in
    return out


def pil(image: np.ndarray) -> Any:
    from PIL import Image

    return Image.fromarray(image)


def assert_same_run(engine_recs: list[Recorder], ref_rec: Recorder, engine_out: torch.Tensor, ref_out: torch.Tensor) -> None:
    """Every latent the reference fed its UNet (at timestep t) was fed to the engine's UNet at t during
    ``engine_recs`` (the calls that carried this frame); the latent of the last decode equals the
    reference's; the decoded frames agree. All within the tolerances."""
    rows = [row for rec in engine_recs for row in rec.unet_rows]
    assert ref_rec.unet_rows and len(ref_rec.decode_in) == 1
    for k, (x_ref, t_ref) in enumerate(ref_rec.unet_rows):
        at_t = [x for x, t in rows if t == t_ref]
        assert at_t, f"the engine never ran its UNet at timestep {t_ref} (it ran {sorted({t for _, t in rows})})"
        err = min(float((x - x_ref).abs().max()) for x in at_t)
        assert err <= LATENT_ATOL, f"UNet input at t={t_ref} (reference row {k}): max abs difference {err:.3g} > {LATENT_ATOL}"
    torch.testing.assert_close(engine_recs[-1].decode_in[-1], ref_rec.decode_in[0], atol=LATENT_ATOL, rtol=0,
                               msg=lambda m: f"decoder input latent: {m}")
    torch.testing.assert_close(engine_out, ref_out, atol=FRAME_ATOL, rtol=0, msg=lambda m: f"decoded frame: {m}")


# ----------------------------------------------------------------------------- SD-Turbo (Euler)
TURBO1 = {"base_model": "sd-turbo", "controlnet": "", "vae": "tiny", "steps": 1, "cfg_type": "none"}


def test_sd_turbo_one_step_equals_diffusers_euler_img2img(models_root, images):
    stage = stage_of(models_root, **TURBO1)
    noise = make_noise(1)
    outs, recs = run_engine(stage, images[:1], noise, strength=0.5)
    ts = grid_timesteps(stage)
    assert ts == [519]  # strength 0.5, 1 step -> index 24 of the 50-step grid
    ref = Reference(stage, models_root, **TURBO1)
    ref_rec = Recorder()
    out = run_pipe(ref.pipe(ref.scheduler("EulerDiscreteScheduler")), pil(images[0]), ts, [noise[0:1]], ref_rec,
                   prompt=PROMPT, guidance_scale=1.0, output_type="pt")
    assert_same_run(recs, ref_rec, outs[0], out.permute(0, 2, 3, 1))


TURBO_CN = {"base_model": "sd-turbo", "controlnet": "openpose", "vae": "tiny", "steps": 2, "stream_batch": True, "cfg_type": "none"}
CN_PARAMS = {"strength": 0.5, "controlnet_conditioning_scale": 0.8}


@pytest.fixture(scope="module")
def turbo_cn(models_root: Path) -> tuple[AvatarStage, Reference]:
    """SD-Turbo + OpenPose ControlNet + TAESD, 2 steps, stream batch, no CFG; and its reference."""
    stage = stage_of(models_root, **TURBO_CN)
    return stage, Reference(stage, models_root, **TURBO_CN)


def test_sd_turbo_two_steps_with_controlnet_equal_two_euler_steps(turbo_cn, images, control):
    stage, ref = turbo_cn
    noise = make_noise(2)
    cond = torch.from_numpy(control)[None]  # uint8 [0, 255], as a Scope-style pose image
    outs, recs = run_engine(stage, images[:1], noise, cond, **CN_PARAMS)
    ts = grid_timesteps(stage)
    assert ts == [519, 259]
    out, ref_rec = ref.euler_chain("controlnet", images[0], ts, noise, control_image=pil(control), controlnet_conditioning_scale=0.8)
    assert_same_run(recs, ref_rec, outs[0], out)


def test_sd_turbo_stream_batch_frame_k_equals_frame_k_alone(turbo_cn, images, control):
    """After warm-up, output k+1 (latency 1 frame) is frame k: as the reference and as the engine on frame k alone."""
    stage, ref = turbo_cn
    noise = make_noise(2)
    cond = torch.from_numpy(control)[None].float() / 255.0  # float [0, 1], as the pose stage hands it on
    outs, recs = run_engine(stage, images[:4], noise, cond, **CN_PARAMS)
    assert stage.engine.latency_frames == 1
    k = 2  # frame 2 shares its two UNet calls with frames 1 and 3
    out, ref_rec = ref.euler_chain("controlnet", images[k], grid_timesteps(stage), noise, control_image=pil(control),
                                   controlnet_conditioning_scale=0.8)
    assert_same_run(recs[k:k + 2], ref_rec, outs[k + 1], out)
    alone, _ = run_engine(stage, [images[k]], noise, cond, **CN_PARAMS)
    torch.testing.assert_close(outs[k + 1], alone[0], atol=FRAME_ATOL, rtol=0, msg=lambda m: f"frame {k} alone: {m}")
    assert (outs[2] - outs[3]).abs().max() > 1e-2  # different frames really give different outputs


# ----------------------------------------------------------------------------- SD 1.5 + LCM-LoRA (LCMScheduler)
LCM_FULL = {"base_model": "dreamshaper-8", "lora": "lcm-lora-sdv1-5", "controlnet": "openpose", "vae": "full",
            "ip_adapter": "auto", "steps": 2, "stream_batch": False, "cfg_type": "full"}


def test_lcm_two_steps_full_cfg_controlnet_ip_adapter_equal_diffusers_lcm_pipeline(models_root, images, control, ref_dir):
    from PIL import Image

    stage = stage_of(models_root, **LCM_FULL)
    noise = make_noise(2)
    params = {"strength": 0.6, "guidance_scale": 2.5, "negative_prompt": NEGATIVE, "controlnet_conditioning_scale": 0.8,
              "ip_adapter_scale": 0.7, "reference_images": str(ref_dir)}
    cond = torch.from_numpy(control)[None].float() / 255.0
    outs, recs = run_engine(stage, images[:1], noise, cond, **params)
    ts = grid_timesteps(stage)
    ref = Reference(stage, models_root, **LCM_FULL)
    pipe = ref.pipe(ref.scheduler("LCMScheduler"), "controlnet")
    pipe.set_ip_adapter_scale(0.7)
    refs = [Image.open(p).convert("RGB") for p in sorted(ref_dir.glob("*.png"))]
    ref_rec = Recorder()
    out = run_pipe(pipe, pil(images[0]), ts, [noise[0:1], noise[1:2]], ref_rec, prompt=PROMPT, negative_prompt=NEGATIVE,
                   guidance_scale=2.5, control_image=pil(control), controlnet_conditioning_scale=0.8,
                   ip_adapter_image=[refs], output_type="pt")
    assert_same_run(recs, ref_rec, outs[0], out.permute(0, 2, 3, 1))
    assert ref.comps.pipe.vae.config.scaling_factor == pytest.approx(0.18215)  # this test covers a scaled latent space


def rcfg_self_reference(ref: Reference, image: np.ndarray, timesteps: list[int], noise: torch.Tensor,
                        guidance: float, delta: float) -> tuple[torch.Tensor, Recorder]:
    """Residual CFG "self" over ``LCMScheduler.step()``; -> decoded frame (1, H, W, 3), record.

    The unconditional prediction is ``delta`` times the virtual residual noise: at the first step
    the noise put into the input latent, later the noise that takes the frame's input latent
    ``z`` to ``x_t`` under the scheduler's own ``add_noise`` (which is linear in the noise)."""
    from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_img2img import retrieve_latents

    pipe = ref.pipe(pin_timesteps(ref.scheduler("LCMScheduler"), timesteps))
    sched = pipe.scheduler
    sched.set_timesteps(len(timesteps))
    with torch.no_grad(), recording(pipe.unet, pipe.vae) as rec:
        pixels = pipe.image_processor.preprocess(pil(image))
        z = retrieve_latents(pipe.vae.encode(pixels)) * pipe.vae.config.scaling_factor
        emb, _ = pipe.encode_prompt(PROMPT, "cpu", 1, False)
        x = sched.add_noise(z, noise[0:1], sched.timesteps[:1])
        residual = noise[0:1]
        for i, t in enumerate(sched.timesteps):
            if i > 0:
                clean = sched.add_noise(z, torch.zeros_like(z), t[None])
                per_unit_noise = sched.add_noise(torch.zeros_like(z), torch.ones_like(z), t[None])
                residual = (x - clean) / per_unit_noise
            eps_cond = pipe.unet(x, t, encoder_hidden_states=emb).sample
            eps = delta * residual + guidance * (eps_cond - delta * residual)
            with fed_noise([noise[i + 1:i + 2]] if i + 1 < len(timesteps) else []):
                x = sched.step(eps, t, x).prev_sample
        decoded = pipe.vae.decode(x / pipe.vae.config.scaling_factor, return_dict=False)[0]
        frame = pipe.image_processor.postprocess(decoded, output_type="pt")
    return frame.permute(0, 2, 3, 1), rec


LCM_SELF = {"base_model": "dreamshaper-8", "lora": "lcm-lora-sdv1-5", "controlnet": "", "vae": "tiny", "steps": 3,
            "stream_batch": True, "cfg_type": "self"}


def test_lcm_residual_cfg_self_three_steps_stream_batch_equals_reference(models_root, images):
    stage = stage_of(models_root, **LCM_SELF)
    ref = Reference(stage, models_root, **LCM_SELF)
    noise = make_noise(3)
    params = {"strength": 0.5, "guidance_scale": 1.8, "delta": 0.7}
    outs, recs = run_engine(stage, images, noise, **params)
    ts = grid_timesteps(stage)
    assert ts == [519, 339, 179]
    # the first frame (its 3 steps), then frame 2 out of the batch 2 frames later (it shared its UNet
    # calls with frames 0-4): each in-flight frame keeps its own input latent for the residual
    for k in (0, 2):
        out, ref_rec = rcfg_self_reference(ref, images[k], ts, noise, 1.8, 0.7)
        assert_same_run(recs[k:k + 3] if k else recs[:1], ref_rec, outs[k + 2] if k else outs[0], out)
    alone, _ = run_engine(stage, [images[2]], noise, **params)
    torch.testing.assert_close(outs[4], alone[0], atol=FRAME_ATOL, rtol=0)


# ----------------------------------------------------------------------------- v-prediction
VPRED = {"base_model": "sd-turbo", "controlnet": "", "vae": "full", "steps": 2, "stream_batch": False, "cfg_type": "none"}


def test_v_prediction_two_steps_equal_two_euler_steps(tmp_path, images):
    root = tmp_path / "models"
    build_base(root, "sd21", prediction_type="v_prediction")
    stage = stage_of(root, **VPRED)
    assert stage.engine.prediction_type == "v_prediction"
    ref = Reference(stage, root, **VPRED)
    assert ref.scheduler("EulerDiscreteScheduler").config.prediction_type == "v_prediction"
    noise = make_noise(2)
    outs, recs = run_engine(stage, images[:1], noise, strength=0.5)
    out, ref_rec = ref.euler_chain("img2img", images[0], grid_timesteps(stage), noise)
    assert_same_run(recs, ref_rec, outs[0], out)


# ----------------------------------------------------------------------------- SDXL-Turbo
SDXL1 = {"base_model": "sdxl-turbo", "controlnet": "", "vae": "tiny", "steps": 1, "cfg_type": "none"}


def test_sdxl_turbo_one_step_equals_diffusers_sdxl_img2img(tmp_path, images):
    root = tmp_path / "models"
    build_base(root, "sdxl", full_vae=False)
    build_taesd(root, "taesdxl")
    stage = stage_of(root, **SDXL1)
    ref = Reference(stage, root, **SDXL1)
    noise = make_noise(1)
    outs, recs = run_engine(stage, images[:1], noise, strength=0.7)
    ts = grid_timesteps(stage)
    ref_rec = Recorder()
    out = run_pipe(ref.pipe(ref.scheduler("EulerDiscreteScheduler"), "sdxl"), pil(images[0]), ts, [noise[0:1]], ref_rec,
                   prompt=PROMPT, guidance_scale=1.0, output_type="pt")
    assert_same_run(recs, ref_rec, outs[0], out.permute(0, 2, 3, 1))
