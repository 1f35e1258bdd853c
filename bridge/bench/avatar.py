"""``avatar-bridge bench avatar``: fps, per-part ms and latency of the avatar path, per configuration.

Builds the real architectures — the SD-Turbo UNet (its SD 2.1 config), an SD 2.1 OpenPose
ControlNet and TAESD (``AutoencoderTiny``) — from their published ``config.json`` values
(written below) with random weights (``--random-weights``; compute time does not depend
on weight values), or loads the real models from the models folder (without the flag).
Real frames of a real person (the carphone clip) go through, for every configuration:
steps x ControlNet on/off x acceleration x stream batch x similarity filter (each a list
option). Each row reports:

* ``fps_diffusion``: the avatar engine alone (``engine(frame, pose image)``: pinned upload,
  the frame's kernels or CUDA graph, download), one host sync per frame and no other;
* ``fps_end_to_end`` (also ``fps``): pose -> avatar -> alpha in series on one thread, as a
  chain runs them when its stages do not overlap;
* ``fps_pipelined``: the same three stages each on its own thread, frames handed on through
  queues of two (pose of N+1, diffusion of N and alpha of N-1 at once): the slowest stage
  sets the rate;
* ``parts_ms``: mean ms per frame of ``pose`` and ``alpha`` (wall clock), ``encode``,
  ``controlnet``, ``unet``, ``decode`` (eager rows only: CUDA events on the engine's stream,
  no sync between parts; wall clock on a CPU) and ``frame`` (the whole diffusion frame on the
  device, between two CUDA events; wall clock on a CPU);
* ``latency_frames`` (``steps - 1`` with stream batch, else 0), ``warmup_s`` (the CUDA-graph
  capture / compile before the stream goes live) and ``output_finite`` (random weights in
  float16 may overflow: a NaN frame still times the same).

Text embeddings are a fixed random tensor of the text encoder's output shape: prompts are
encoded when they change, never per frame, so the text encoder is not part of a frame.
"""

from __future__ import annotations

import argparse
import gc
import json
import queue
import sys
import threading
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
PARTS = ("pose", "encode", "controlnet", "unet", "decode", "frame", "alpha")
#: ``--model-size tiny``: the same architectures, tiny, to check the benchmark (and scripts/gpu-check.sh) on a CPU
TINY_UNET = {**SD_TURBO_UNET, "block_out_channels": [32, 64], "attention_head_dim": [2, 4], "layers_per_block": 1,
             "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"], "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"]}
TINY_CONTROLNET = {**SD21_OPENPOSE_CONTROLNET, "block_out_channels": [32, 64], "attention_head_dim": [2, 4], "layers_per_block": 1,
                   "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"], "conditioning_embedding_out_channels": [8, 8, 8, 8]}
TINY_TAESD = {**TAESD, "encoder_block_out_channels": [8, 8, 8, 8], "decoder_block_out_channels": [8, 8, 8, 8],
              "num_encoder_blocks": [1, 1, 1, 1], "num_decoder_blocks": [1, 1, 1, 1]}


#: lever rows: StreamEngine load parameters (one lever off each), and whether frames come without a pose image
LEVERS: dict[str, tuple[dict[str, Any], bool]] = {
    "all-on": ({}, False),
    "cudnn-benchmark-off": ({"cudnn_benchmark": False}, False),
    "spin-wait": ({"blocking_wait": False}, False),
    "nchw": ({"channels_last": False}, False),
    "no-pose": ({}, True),  # ControlNet engine, no pose image: the ControlNet-free graph
    "no-pose-cn-graph": ({"controlnet_free_graph": False}, True),  # the same, on the full graph at scale 0
}


def add_parser(sub: Any) -> None:
    """Add ``bench avatar`` to the bench subparsers."""
    p = sub.add_parser("avatar", help="avatar path: fps (end to end, pipelined, diffusion only), per-part ms, latency")
    p.add_argument("--random-weights", action="store_true",
                   help="build SD-Turbo UNet, SD 2.1 OpenPose ControlNet and TAESD from their configs with random weights "
                        "(default: load sd-turbo + controlnet-openpose-sd21 + taesd from the models folder)")
    p.add_argument("--model-size", default="real", choices=["real", "tiny"],
                   help="with --random-weights: the real architectures, or tiny ones to check the benchmark on a CPU")
    p.add_argument("--width", type=int, default=512, help="output width, px (default 512)")
    p.add_argument("--height", type=int, default=512, help="output height, px (default 512)")
    p.add_argument("--frames", type=int, default=20, help="timed frames per configuration and pass (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed frames first (default 3)")
    p.add_argument("--steps", default="1,2", help="comma-separated step counts (default 1,2)")
    p.add_argument("--controlnet", default="on,off", help="ControlNet rows: on, off or on,off (default on,off)")
    p.add_argument("--acceleration", default="auto",
                   help="comma-separated: auto (cuda-graphs on CUDA, none elsewhere), none, compile, cuda-graphs (default auto)")
    p.add_argument("--stream-batch", default="on", help="stream batch rows: on, off or on,off (default on)")
    p.add_argument("--filter", default="off", help="similarity filter rows: off, on or off,on (default off)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--dtype", default="auto", choices=["auto", "float16", "bfloat16", "float32"])
    p.add_argument("--models-dir", default=None, help="models folder (without --random-weights)")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per configuration")
    p.add_argument("--levers", default="all-on",
                   help="fast-path lever rows, comma-separated: " + ", ".join(LEVERS) + " (default all-on; each other one turns "
                        "one lever off, or with no-pose* runs a ControlNet engine on frames without a pose image)")
    p.add_argument("--profile", default=None, metavar="FILE",
                   help="write a torch.profiler table of the 30 most expensive kernels of the first 1-step + ControlNet row to FILE")
    p.set_defaults(func=run)


def build_models(random_weights: bool, device: torch.device, dtype: torch.dtype, models_dir: str | None,
                 size: str = "real") -> tuple[Any, Any, Any, Any]:
    """(unet, controlnet, vae, scheduler) on ``device``: random weights from the configs, or the real models.

    Random weights are initialised on ``device`` itself (seconds on a GPU, not a minute on the CPU).

    Raises:
        ModelMissingError: without ``random_weights``, a model that is not downloaded.
    """
    from diffusers import AutoencoderTiny, ControlNetModel, UNet2DConditionModel
    from diffusers.schedulers import LCMScheduler

    if not random_weights:
        from bridge.avatar.models import load_components

        comps = load_components("sd-turbo", "openpose", "tiny", models_root=_root(models_dir), dtype=dtype, device=device)
        return comps.pipe.unet, comps.controlnet, comps.pipe.vae, comps.pipe.scheduler
    tiny = size == "tiny"
    torch.manual_seed(0)
    with torch.device(device):
        unet = UNet2DConditionModel.from_config(TINY_UNET if tiny else SD_TURBO_UNET)
        controlnet = ControlNetModel.from_config(TINY_CONTROLNET if tiny else SD21_OPENPOSE_CONTROLNET)
        vae = AutoencoderTiny.from_config(TINY_TAESD if tiny else TAESD)
    for model in (unet, controlnet, vae):
        if dtype != torch.float32:
            model.to(dtype=dtype)
        model.eval()
    return unet, controlnet, vae, LCMScheduler(**SD_TURBO_SCHEDULER)


def _root(models_dir: str | None) -> Any:
    from bridge.avatar.models import models_dir as default_dir

    return default_dir(models_dir)


def _frames(width: int, height: int) -> tuple[list[np.ndarray], str]:
    """Real frames (carphone, a man talking; PyAV, else OpenCV) or, where the sample is not at hand, a synthetic gradient."""
    what = "carphone (176x144, real person)"
    try:
        from bridge.samples import fetch_sample

        path = fetch_sample("carphone", quiet=True)
    except Exception as exc:  # offline: still time the models
        yy, xx = np.mgrid[0:height, 0:width]
        frames = [np.stack([(xx + 3 * i) % 256, (yy + 2 * i) % 256, (xx + yy) % 256], -1).astype(np.uint8) for i in range(30)]
        return frames, f"synthetic gradient ({exc.__class__.__name__} fetching carphone)"
    try:
        import av

        with av.open(str(path)) as container:
            return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)], what
    except ImportError:  # a GPU box with OpenCV but no PyAV
        import cv2

        cap, frames = cv2.VideoCapture(str(path)), []
        ok, bgr = cap.read()
        while ok:
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            ok, bgr = cap.read()
        cap.release()
        if not frames:
            raise
        return frames, what


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


def _pose(pose: Any, src: torch.Tensor) -> torch.Tensor:
    stage, runtime = pose
    out = stage(video=[src], source_video=[src], **runtime)
    return out.get("control_video", out["video"])[-1:]


def _alpha(alpha: Any, src: torch.Tensor, image: torch.Tensor) -> None:
    stage, runtime = alpha
    stage(video=[image.mul(255.0)], source_video=[src], **runtime)


def measure(engine: Any, frames: list[np.ndarray], pose: Any, alpha: Any, *, controlnet: bool, similarity_filter: bool,
            warmup: int, count: int) -> dict[str, Any]:
    """Three passes of ``count`` frames (after ``warmup``): diffusion only, end to end in series, end to end pipelined.

    Returns fps of each pass, mean ms per part and whether the first output was finite.
    """
    from bridge.avatar.stream import StreamParams

    engine.update(StreamParams(prompt="bench", strength=0.5, controlnet_conditioning_scale=0.8 if controlnet else 0.0,
                               similarity_filter=similarity_filter, similarity_threshold=0.98))
    sources = [torch.from_numpy(np.ascontiguousarray(frames[i % len(frames)]))[None] for i in range(warmup + count)]
    if pose is not None:
        controls = [_pose(pose, src) for src in sources]
    else:
        controls = list(sources)  # uint8: the engine converts on the device
    if not controlnet:
        controls = [None] * len(sources)
    # 1. diffusion only: one host sync per frame (the download), parts by CUDA events
    engine.reset()
    engine.profile = True
    parts = dict.fromkeys(PARTS, 0.0)
    finite = None
    t_start = 0.0
    for i, (src, control) in enumerate(zip(sources, controls)):
        if i == warmup:
            t_start = time.perf_counter()
        out = engine(src, control)
        if finite is None:
            finite = bool(torch.isfinite(out).all())
        if i >= warmup and not engine.skipped:
            for key, ms in engine.timings.items():
                parts[key] += ms
    fps_diffusion = count / (time.perf_counter() - t_start)
    engine.profile = False
    # 2. end to end in series: pose -> avatar -> alpha on this thread
    engine.reset()
    for i, src in enumerate(sources):
        if i == warmup:
            t_start = time.perf_counter()
        t0 = time.perf_counter()
        control = _pose(pose, src) if pose is not None else src
        t1 = time.perf_counter()
        image = engine(src, control if controlnet else None)
        t2 = time.perf_counter()
        if alpha is not None:
            _alpha(alpha, src, image)
        if i >= warmup:
            parts["pose"] += (t1 - t0) * 1000.0 if pose is not None else 0.0
            parts["alpha"] += (time.perf_counter() - t2) * 1000.0 if alpha is not None else 0.0
    fps_series = count / (time.perf_counter() - t_start)
    # 3. pipelined: each stage on its own thread
    engine.reset()
    fps_pipelined = _pipelined(engine, sources, pose, alpha, controlnet, warmup)
    result = {k: round(v / count, 2) for k, v in parts.items()}
    if pose is None:
        result["pose"] = None
    if alpha is None:
        result["alpha"] = None
    return {"fps_diffusion": round(fps_diffusion, 2), "fps_end_to_end": round(fps_series, 2), "fps_pipelined": round(fps_pipelined, 2),
            "parts_ms": result, "output_finite": finite}


def _pipelined(engine: Any, sources: list[torch.Tensor], pose: Any, alpha: Any, controlnet: bool, warmup: int) -> float:
    """fps of pose -> avatar -> alpha with each stage on its own thread (queues of 2), timed after ``warmup`` outputs."""
    to_avatar: queue.Queue = queue.Queue(maxsize=2)
    to_alpha: queue.Queue = queue.Queue(maxsize=2)
    errors: list[BaseException] = []

    def pose_worker() -> None:
        try:
            for src in sources:
                to_avatar.put((src, (_pose(pose, src) if pose is not None else src) if controlnet else None))
        except BaseException as exc:
            errors.append(exc)
        to_avatar.put(None)

    def avatar_worker() -> None:
        try:
            while (item := to_avatar.get()) is not None:
                to_alpha.put((item[0], engine(item[0], item[1])))
        except BaseException as exc:
            errors.append(exc)
        to_alpha.put(None)

    threads = [threading.Thread(target=pose_worker, daemon=True), threading.Thread(target=avatar_worker, daemon=True)]
    for thread in threads:
        thread.start()
    done, t_start = 0, time.perf_counter()
    while (item := to_alpha.get()) is not None:
        if alpha is not None:
            _alpha(alpha, item[0], item[1])
        done += 1
        if done == warmup:
            t_start = time.perf_counter()
    elapsed = time.perf_counter() - t_start
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return (done - warmup) / elapsed


def _flags(text: str, what: str) -> list[bool]:
    from bridge.errors import ConfigError

    values = [v.strip().lower() for v in text.split(",") if v.strip()]
    if not values or any(v not in ("on", "off") for v in values):
        raise ConfigError(f"bench avatar: --{what} takes on, off or on,off; got {text!r}")
    return [v == "on" for v in values]


def run(args: argparse.Namespace) -> int:
    """``avatar-bridge bench avatar``: prints a table (or ``--json`` list) per configuration."""
    from bridge.avatar.models import resolve_dtype
    from bridge.avatar.stream import ACCELERATIONS, StreamEngine
    from bridge.errors import ConfigError

    if args.frames < 1 or args.warmup < 0:
        raise ConfigError("--frames must be >= 1 and --warmup >= 0")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = resolve_dtype(args.dtype, device)
    try:
        steps_list = [int(s) for s in args.steps.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--steps must be comma-separated integers, got {args.steps!r}") from None
    accelerations = [a.strip() for a in args.acceleration.split(",") if a.strip()]
    if not accelerations or any(a not in ACCELERATIONS for a in accelerations):
        raise ConfigError(f"--acceleration takes a list of {', '.join(ACCELERATIONS)}; got {args.acceleration!r}")
    levers = [v.strip() for v in getattr(args, "levers", "all-on").split(",") if v.strip()]
    if not levers or any(v not in LEVERS for v in levers):
        raise ConfigError(f"--levers takes a list of {', '.join(LEVERS)}; got {args.levers!r}")
    profile_acceleration = "auto" if "auto" in accelerations else accelerations[0]
    cn_flags, sb_flags, filter_flags = _flags(args.controlnet, "controlnet"), _flags(args.stream_batch, "stream-batch"), _flags(args.filter, "filter")
    t0 = time.perf_counter()
    unet, controlnet, vae, scheduler = build_models(args.random_weights, device, dtype, args.models_dir, args.model_size)
    embeds = torch.randn(TEXT_SHAPE, generator=torch.Generator().manual_seed(0)).to(device, dtype)
    frames, what = _frames(args.width, args.height)
    pose = _stage("pose", torch.device("cpu"))
    alpha = _stage("alpha", torch.device("cpu"), alpha_source="output")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    weights = f"random weights ({args.model_size} size)" if args.random_weights else "real weights"
    print(f"bench avatar: {weights}, {args.width}x{args.height}, {dtype}, {name}, input {what}, "
          f"built in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    results = []
    profiled = False
    for steps in steps_list:
        for acceleration in accelerations:
            for stream_batch, use_cn, lever in [(sb, cn, v) for sb in sb_flags for cn in cn_flags for v in levers]:
                    load, no_pose = LEVERS[lever]
                    if no_pose and not use_cn:
                        continue  # no ControlNet: nothing to leave out
                    try:
                        t_warm = time.perf_counter()
                        engine = StreamEngine(unet=unet, vae=vae, scheduler=scheduler, encode_prompt=lambda text: (embeds, None),
                                              controlnet=controlnet if use_cn else None, width=args.width, height=args.height,
                                              steps=steps, stream_batch=stream_batch, cfg_type="none", device=device, dtype=dtype,
                                              acceleration=acceleration, **load)
                        engine.warmup()
                        warmup_s = time.perf_counter() - t_warm
                    except ValueError as exc:
                        raise ConfigError(f"bench avatar: {exc}") from None
                    for use_filter in filter_flags:
                        m = measure(engine, frames, pose, alpha, controlnet=use_cn and not no_pose, similarity_filter=use_filter,
                                    warmup=args.warmup, count=args.frames)
                        row = {"steps": steps, "controlnet": use_cn, "lever": lever, "acceleration": engine.acceleration,
                               "requested_acceleration": acceleration,
                               "stream_batch": stream_batch, "similarity_filter": use_filter, "width": args.width, "height": args.height,
                               "fps": m["fps_end_to_end"], "fps_end_to_end": m["fps_end_to_end"], "fps_pipelined": m["fps_pipelined"],
                               "fps_diffusion": m["fps_diffusion"], "latency_frames": engine.latency_frames, "warmup_s": round(warmup_s, 2),
                               "output_finite": m["output_finite"], "parts_ms": m["parts_ms"], "device": name, "dtype": str(dtype).removeprefix("torch.")}
                        results.append(row)
                        if (getattr(args, "profile", None) and steps == 1 and use_cn and lever == "all-on"
                                and acceleration == profile_acceleration and not profiled):
                            write_profile(engine, frames, args.profile, row)
                            profiled = True
                        if args.json:  # the finished row now, so a run cut off by a timeout keeps what it measured
                            print(f"bench avatar row: {json.dumps(row)}", file=sys.stderr, flush=True)
                        else:
                            print(_row(row), flush=True)
                    del engine
                    gc.collect()  # free the engine's CUDA graph pool before the next capture
    if args.json:
        print(json.dumps(results, indent=1))
    return 0


def write_profile(engine: Any, frames: list[np.ndarray], path: str, row: dict[str, Any], count: int = 10) -> None:
    """Profile ``count`` diffusion frames of ``engine`` with ``torch.profiler`` and write the table of
    the 30 most expensive kernels (by total CUDA time on a GPU, by self CPU time on a CPU) to ``path``.

    Frames are the bench's own (H, W, 3) uint8 RGB frames; the ControlNet input is the frame itself
    (kernel time does not depend on the pose picture). Raises OSError if ``path`` cannot be written.
    """
    from torch.profiler import ProfilerActivity, profile

    cuda = engine.device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    sources = [torch.from_numpy(f).unsqueeze(0) for f in frames[:count]] or [torch.zeros(1, engine.height, engine.width, 3, dtype=torch.uint8)]
    with profile(activities=activities) as prof:
        for i in range(count):
            src = sources[i % len(sources)]
            engine(src, src if engine.controlnet is not None else None)
    sort = "cuda_time_total" if cuda else "self_cpu_time_total"
    title = (f"# torch.profiler, {count} frames: steps {row['steps']}, controlnet {row['controlnet']}, "
             f"acceleration {row['acceleration']}, {row['width']}x{row['height']}, {row['device']}, sorted by {sort}\n")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(title + prof.key_averages().table(sort_by=sort, row_limit=30) + "\n")
    print(f"bench avatar: profile of {count} frames written to {path}", file=sys.stderr)


def _row(r: dict[str, Any]) -> str:
    ms = "  ".join(f"{k} {'n/a' if v is None else f'{v:.1f}'}" for k, v in r["parts_ms"].items())
    return (f"steps {r['steps']}  controlnet {'on ' if r['controlnet'] else 'off'}  {r['acceleration']:<14}  {r.get('lever', 'all-on'):<19}  "
            f"stream batch {'on ' if r['stream_batch'] else 'off'}  filter {'on ' if r['similarity_filter'] else 'off'}  "
            f"end to end {r['fps_end_to_end']:6.2f} fps  pipelined {r['fps_pipelined']:6.2f} fps  diffusion {r['fps_diffusion']:6.2f} fps  "
            f"latency {r['latency_frames']} frames  | ms: {ms}")
