"""Avatar stage: real-time img2img with a pose ControlNet and an IP-Adapter identity, on diffusers.

The camera frame (``source_video``) is the img2img init image; the pose skeleton the
pose stage hands on (``control_video``, else ``video``) steers the ControlNet; reference
images of the avatar steer the IP-Adapter. The engine is :mod:`bridge.avatar.stream`
(StreamDiffusion's stream batch, residual CFG and similarity filter, arXiv 2312.12491);
models, families and their checks are :mod:`bridge.avatar.models`.

Output: ``{"video": (1, H, W, 3) float32 in [0, 1]}`` on the CPU at the stage's ``width`` x
``height`` (uint8 [0, 255] when called with ``keep_uint8``, the daemon's path); the alpha stage after it mattes this generated frame (``alpha_source: output``).
On CUDA the engine works on its own CUDA stream (uint8 frames up through pinned buffers,
asynchronous copies, conversion on the GPU) and waits once per frame, for its download;
with ``acceleration: auto`` (the default) the whole frame is one CUDA graph, captured at
load (:meth:`~bridge.avatar.stream.StreamEngine.warmup`), so no live change recompiles.

Every call is synchronous: the engine's assembly line (:mod:`bridge.engine`) already runs
diffusion of frame N while other workers run pose of N+1 and alpha of N-1. The old
``overlap`` switch, which did the same inside this stage, is kept only so old presets and
panels load; it has no effect.

A missing model or a failed load does not stop the daemon: the config sets
``bypass_on_load_error`` so the chain streams the camera frame through this slot (to the
alpha stage) with state ``error`` and the one-line reason (see :class:`bridge.chain.Chain`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from bridge.errors import ConfigError
from bridge.stages.base import BasePipelineConfig, Pipeline, UsageType, ui_field_config
from bridge.stages.registry import register

log = logging.getLogger("bridge.stages.avatar")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
MAX_REFERENCE_IMAGES = 8


class AvatarConfig(BasePipelineConfig):
    """Parameters of the avatar stage. Load-time ones rebuild the models in the background."""

    pipeline_id = "avatar"
    pipeline_name = "Stream Avatar"
    pipeline_description = ("Real-time img2img (StreamDiffusion-style) with a pose ControlNet and an IP-Adapter "
                            "identity from reference images; SD-Turbo, SD 1.5 + LCM-LoRA or SDXL.")
    usage = [UsageType.MAIN]
    supports_prompts = True
    osc_name = "avatar"
    bypass_on_load_error: ClassVar[bool] = True

    # ------------------------------------------------------------ load-time
    base_model: str = Field(
        default="sd-turbo",
        description="Base model: a name from 'avatar-bridge models list', a Hugging Face owner/name, or a local folder.",
        json_schema_extra={**ui_field_config(order=0, label="Base model", is_load_param=True), "path": True},
    )
    controlnet: str = Field(
        default="openpose",
        description="ControlNet: 'openpose' (the OpenPose ControlNet of the base's family), '' for none, a name or a folder.",
        json_schema_extra={**ui_field_config(order=1, label="ControlNet", is_load_param=True), "path": True},
    )
    vae: str = Field(
        default="tiny",
        description="VAE: 'tiny' (TAESD/TAESDXL, fast), 'full' (the base model's own), or a tiny-VAE name/folder.",
        json_schema_extra={**ui_field_config(order=2, label="VAE", is_load_param=True), "path": True},
    )
    lora: str = Field(
        default="",
        description="LoRA fused into the UNet, e.g. 'lcm-lora-sdv1-5' for few-step SD 1.5; '' for none.",
        json_schema_extra={**ui_field_config(order=3, label="LoRA", is_load_param=True), "path": True},
    )
    ip_adapter: str = Field(
        default="",
        description="IP-Adapter for identity: 'auto' (the base's family; none exists for SD 2.1/SD-Turbo), a name, or ''.",
        json_schema_extra={**ui_field_config(order=4, label="IP-Adapter", is_load_param=True), "path": True},
    )
    width: int = Field(
        default=512, ge=64, le=2048, multiple_of=8,
        description="Output width in pixels.",
        json_schema_extra=ui_field_config(order=5, label="Width", is_load_param=True),
    )
    height: int = Field(
        default=512, ge=64, le=2048, multiple_of=8,
        description="Output height in pixels.",
        json_schema_extra=ui_field_config(order=6, label="Height", is_load_param=True),
    )
    steps: int = Field(
        default=1, ge=1, le=4,
        description="Denoising steps (length of t_index_list): 1-2 for SD-Turbo, 2-4 with LCM-LoRA.",
        json_schema_extra=ui_field_config(order=7, label="Steps", is_load_param=True),
    )
    stream_batch: bool = Field(
        default=True,
        description="Stream batch: one UNet call advances every frame in flight (latency steps-1 frames).",
        json_schema_extra=ui_field_config(order=8, label="Stream batch", is_load_param=True),
    )
    cfg_type: Literal["none", "self", "full"] = Field(
        default="none",
        description="Guidance: none (SD-Turbo), self (residual CFG, no extra UNet pass), full (negative prompt, 2x UNet).",
        json_schema_extra=ui_field_config(order=9, label="CFG type", is_load_param=True),
    )
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = Field(
        default="auto",
        description="Weights/activations dtype: auto = float16 on CUDA, float32 elsewhere.",
        json_schema_extra=ui_field_config(order=10, label="Dtype", is_load_param=True),
    )
    acceleration: Literal["auto", "none", "compile", "cuda-graphs"] = Field(
        default="auto",
        description="auto = cuda-graphs on CUDA, none elsewhere; cuda-graphs captures the whole frame (TAESD, ControlNet, UNet) "
                    "as one CUDA graph at load; compile = torch.compile of the frame (slow first load). CUDA only.",
        json_schema_extra=ui_field_config(order=11, label="Acceleration", is_load_param=True),
    )
    channels_last: bool = Field(
        default=True,
        description="CUDA only: channels-last memory format for the convolutions.",
        json_schema_extra=ui_field_config(order=12, label="Channels last", is_load_param=True),
    )
    models_dir: str = Field(
        default="",
        description="Models folder; '' = $AVATAR_BRIDGE_MODELS or ~/.cache/avatar-bridge/models.",
        json_schema_extra={**ui_field_config(order=13, label="Models folder", is_load_param=True), "path": True},
    )

    # ------------------------------------------------------------ runtime
    prompt: str = Field(
        default="a portrait of a person, digital art, highly detailed",
        max_length=2000,
        description="Text prompt.",
        json_schema_extra=ui_field_config(order=20, label="Prompt"),
    )
    prompt_b: str = Field(
        default="",
        max_length=2000,
        description="Second prompt for the weighted prompt blend.",
        json_schema_extra=ui_field_config(order=21, label="Prompt B"),
    )
    prompt_blend: float = Field(
        default=0.0, ge=0.0, le=1.0,
        description="Weight of prompt B: embedding = (1-w)*E(prompt) + w*E(prompt_b).",
        json_schema_extra=ui_field_config(order=22, label="Prompt blend"),
    )
    negative_prompt: str = Field(
        default="blurry, low quality, deformed",
        max_length=2000,
        description="Negative prompt (used with cfg_type full).",
        json_schema_extra=ui_field_config(order=23, label="Negative prompt"),
    )
    strength: float = Field(
        default=0.5, ge=0.1, le=1.0,
        description="img2img strength: how far from the camera frame (mapped to t_index_list on a 50-step grid).",
        json_schema_extra=ui_field_config(order=24, label="Strength"),
    )
    guidance_scale: float = Field(
        default=1.2, ge=0.0, le=20.0,
        description="Guidance scale (cfg_type self/full).",
        json_schema_extra=ui_field_config(order=25, label="Guidance scale"),
    )
    delta: float = Field(
        default=1.0, ge=0.0, le=2.0,
        description="Residual CFG delta: strength of the virtual negative (cfg_type self).",
        json_schema_extra=ui_field_config(order=26, label="Delta"),
    )
    seed: int = Field(
        default=2, ge=0, le=2**31 - 1,
        description="Noise seed.",
        json_schema_extra=ui_field_config(order=27, label="Seed"),
    )
    seed_b: int = Field(
        default=3, ge=0, le=2**31 - 1,
        description="Second seed for the seed blend.",
        json_schema_extra=ui_field_config(order=28, label="Seed B"),
    )
    seed_blend: float = Field(
        default=0.0, ge=0.0, le=1.0,
        description="Weight of seed B's noise (variance-preserving blend).",
        json_schema_extra=ui_field_config(order=29, label="Seed blend"),
    )
    controlnet_conditioning_scale: float = Field(
        default=0.8, ge=0.0, le=2.0,
        description="ControlNet conditioning scale (0 skips the ControlNet).",
        json_schema_extra=ui_field_config(order=30, label="ControlNet scale"),
    )
    ip_adapter_scale: float = Field(
        default=0.6, ge=0.0, le=2.0,
        description="IP-Adapter scale: how strongly the reference images set the identity.",
        json_schema_extra=ui_field_config(order=31, label="IP-Adapter scale"),
    )
    reference_images: str = Field(
        default="",
        max_length=4000,
        description="IP-Adapter reference images: a folder or files separated by ';' (relative to the presets folder).",
        json_schema_extra={**ui_field_config(order=32, label="Reference images"), "path": True},
    )
    similarity_filter: bool = Field(
        default=False,
        description="Skip near-identical input frames and reuse the last output (stochastic similarity filter).",
        json_schema_extra=ui_field_config(order=33, label="Similarity filter"),
    )
    similarity_threshold: float = Field(
        default=0.98, ge=0.0, le=1.0,
        description="Cosine similarity above which frames start to be skipped.",
        json_schema_extra=ui_field_config(order=34, label="Similarity threshold"),
    )
    similarity_max_skip: int = Field(
        default=10, ge=0, le=120,
        description="Most frames skipped in a row.",
        json_schema_extra=ui_field_config(order=35, label="Max skipped frames"),
    )
    overlap: bool = Field(
        default=False,
        description="No effect (kept for old presets): the engine's assembly line runs diffusion beside pose and alpha of the neighbouring frames.",
        json_schema_extra=ui_field_config(order=36, label="Overlap"),
    )
    fit: Literal["crop", "stretch"] = Field(
        default="crop",
        description="Fit the camera frame to width x height: crop the centre, or stretch.",
        json_schema_extra=ui_field_config(order=37, label="Fit"),
    )

    @model_validator(mode="after")
    def _families(self) -> "AvatarConfig":
        from bridge.avatar.models import check_known

        try:
            check_known(self.base_model, self.controlnet, self.vae, self.lora, self.ip_adapter)
        except ConfigError as exc:
            raise ValueError(str(exc).removeprefix("avatar: ")) from None
        return self


def reference_paths(spec: str) -> list[Path]:
    """Image files named by ``spec``: folders (their images, sorted) and files, ``;``-separated.

    Relative paths are taken from the presets folder first, then the working directory.

    Raises:
        ConfigError: a path that does not exist, or no image found.
    """
    from bridge.presets import presets_dir

    files: list[Path] = []
    for part in (p.strip() for p in spec.split(";")):
        if not part:
            continue
        path = Path(part).expanduser()
        if not path.is_absolute():
            in_presets = presets_dir() / path
            path = in_presets if in_presets.exists() else Path.cwd() / path
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            files.append(path)
        else:
            raise ConfigError(f"avatar: reference_images {part!r} not found; put PNG/JPEG photos of the avatar there")
    if not files:
        raise ConfigError(f"avatar: no images in reference_images {spec!r}; put PNG/JPEG photos of the avatar there "
                          f"(IP-Adapter identity is off until then)")
    return files[:MAX_REFERENCE_IMAGES]


def load_reference_images(spec: str) -> list[np.ndarray]:
    """The reference images of ``spec`` as (H, W, 3) uint8 RGB arrays (see :func:`reference_paths`).

    Raises:
        ConfigError: missing path, no image, or a file that is not a readable image.
    """
    from PIL import Image, UnidentifiedImageError

    images = []
    for path in reference_paths(spec):
        try:
            with Image.open(path) as img:
                images.append(np.asarray(img.convert("RGB")))
        except (OSError, UnidentifiedImageError) as exc:
            raise ConfigError(f"avatar: cannot read reference image {path}: {exc}") from None
    return images


def control_frame(control: Any, video: Any) -> torch.Tensor | None:
    """The ControlNet image as (1, H, W, 3): uint8 in [0, 255] (kept as uint8: the engine converts it on
    the device) or float in [0, 1]. The last frame of ``control`` (a stage output, THWC, or a Scope list
    of (1,H,W,C) in [0, 255]), else of ``video``."""
    src = control if control is not None else video
    if src is None:
        return None
    if isinstance(src, (list, tuple)):  # Scope input layout, [0, 255]
        if not src:
            return None
        frame = src[-1]
        return frame if frame.dtype == torch.uint8 else frame.float() / 255.0
    frame = src[-1:]  # a stage's output: uint8 [0, 255] or float [0, 1]
    return frame if frame.dtype == torch.uint8 else frame.float()


@register
class AvatarStage(Pipeline):
    """The avatar stage (see module doc).

    Inputs (kwargs): ``source_video`` (camera, list of (1,H,W,3) [0,255]; falls back to
    ``video``) as the img2img init image; ``control_video`` (pose skeleton, THWC [0,1] or
    a list in [0,255]; falls back to ``video``) for the ControlNet; runtime parameters.
    Output: ``{"video": (1, height, width, 3) float32 in [0, 1]}`` on the CPU; with
    ``keep_uint8=True`` (the daemon's chain) uint8 in [0, 255], converted on the device.

    Raises:
        ModelMissingError: at construction, a model is not downloaded (names the fix).
        ConfigError: at construction, a family mismatch or a bad size for the model.
    """

    @classmethod
    def get_config_class(cls) -> type[BasePipelineConfig]:
        return AvatarConfig

    def __init__(self, device: torch.device | str | None = None, **load: Any) -> None:
        super().__init__(device)
        from bridge.avatar.models import load_components, models_dir, resolve_dtype

        cfg = AvatarConfig(**load)  # fills defaults for what was not given
        dtype = resolve_dtype(cfg.dtype, self.device)
        comps = load_components(cfg.base_model, cfg.controlnet, cfg.vae, cfg.lora, cfg.ip_adapter,
                                models_root=models_dir(cfg.models_dir or None), dtype=dtype, device=self.device)
        #: the diffusers pipeline holding the UNet, VAE, text and image encoders
        self.pipe = comps.pipe
        self.family, self.sources = comps.family, comps.sources
        self.engine = engine_from_components(comps, cfg, self.device, dtype)
        self.engine.warmup()  # compile/capture every shape now, in the loader, not on the live frame thread
        self._refs_spec: str | None = None
        log.info("avatar: %s (%s) loaded on %s, %s", cfg.base_model, self.family, self.device, dtype)

    # ----------------------------------------------------------------- per call
    def __call__(self, **kwargs: Any) -> dict[str, torch.Tensor]:
        source = kwargs.get("source_video") or kwargs.get("video")
        if not source:
            raise ValueError("avatar needs video input: kwargs['source_video'] or ['video'] = list of (1,H,W,3) frames")
        control = control_frame(kwargs.get("control_video"), kwargs.get("video"))
        fit = kwargs.get("fit", "crop")
        self._apply(kwargs)
        # the daemon's uint8 path: the frame is made uint8 on the device (a quarter of the bytes
        # cross to the host, no float image on the CPU); Scope's float contract otherwise
        return {"video": self.engine(source[-1], control, fit, uint8=bool(kwargs.get("keep_uint8", False)))}

    def _apply(self, kwargs: dict[str, Any]) -> None:
        """Runtime parameters -> engine (only changes cost anything). Raises a bad reference path once."""
        from bridge.avatar.stream import params_from

        refs = None
        spec = kwargs.get("reference_images", "") or ""
        if spec != self._refs_spec:
            self._refs_spec = spec  # tried once: a bad path is reported once, not every frame
            if self.engine.has_ip_adapter:
                refs = load_reference_images(spec) if spec else []
            elif spec:
                log.warning("avatar: reference_images is set but no IP-Adapter is loaded (ip_adapter: auto, SD 1.5/SDXL base); ignored")
        self.engine.update(params_from(kwargs), reference_images=refs)

    def reset(self) -> None:
        self.engine.reset()


def engine_from_components(comps: Any, cfg: AvatarConfig, device: torch.device, dtype: torch.dtype, *,
                           acceleration: str | None = None, compile_backend: Any = None) -> Any:
    """Build the :class:`~bridge.avatar.stream.StreamEngine` from loaded
    :class:`~bridge.avatar.models.AvatarComponents` and the stage's load-time config
    (``acceleration`` / ``compile_backend`` override the config's, e.g. the ``eager``
    backend to check compiled frames on a CPU).

    Raises:
        ConfigError: width/height do not fit the model (e.g. not a multiple of 64).
    """
    from bridge.avatar.stream import StreamEngine

    pipe = comps.pipe
    sdxl = comps.family == "sdxl"

    def encode_prompt(text: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        with torch.no_grad():
            if sdxl:
                embeds, _, pooled, _ = pipe.encode_prompt(prompt=text, device=device, num_images_per_prompt=1,
                                                          do_classifier_free_guidance=False)
                return embeds, pooled
            embeds, _ = pipe.encode_prompt(text, device, 1, False)
            return embeds, None

    encode_images = set_scale = None
    if comps.ip_adapter:
        def encode_images(images: list[np.ndarray]) -> torch.Tensor:
            pixels = pipe.feature_extractor(images=images, return_tensors="pt").pixel_values
            return pipe.image_encoder(pixels.to(device, pipe.image_encoder.dtype)).image_embeds

        set_scale = pipe.set_ip_adapter_scale
    try:
        return StreamEngine(
            unet=pipe.unet, vae=pipe.vae, scheduler=pipe.scheduler, encode_prompt=encode_prompt,
            controlnet=comps.controlnet, encode_images=encode_images, set_ip_adapter_scale=set_scale,
            width=cfg.width, height=cfg.height, steps=cfg.steps, stream_batch=cfg.stream_batch, cfg_type=cfg.cfg_type,
            device=device, dtype=dtype, acceleration=acceleration or cfg.acceleration, channels_last=cfg.channels_last, sdxl=sdxl,
            compile_backend=compile_backend,
        )
    except ValueError as exc:
        raise ConfigError(f"avatar: {exc}") from None

