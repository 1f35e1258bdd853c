"""A StreamDiffusion-style real-time img2img engine on diffusers components.

The ideas are those of StreamDiffusion (Kodaira et al., "StreamDiffusion: A
Pipeline-level Solution for Real-time Interactive Generation", arXiv 2312.12491); the
code is ours, on plain diffusers models (UNet, ControlNet, VAE / TAESD):

* **Stream batch**: with ``n`` denoising steps (``t_index_list``) the latents
  of the last ``n`` input frames are denoised together in one batch, each at its own
  timestep, so one UNet (+ ControlNet) call per frame advances every frame in flight.
  The output of a call is the frame that came in ``n - 1`` calls earlier (latency
  ``n - 1`` frames). Off: the ``n`` steps of one frame run one after another (no latency).
* **Residual CFG** (R-CFG): ``cfg_type="self"`` replaces the unconditional UNet pass
  of classifier-free guidance by the *virtual residual noise*
  ``eps' = (x_t - sqrt(abar_t) * x0_in) / sqrt(1 - abar_t)`` pointing from the input latent
  ``x0_in`` to ``x_t``; ``eps = delta * eps' + guidance * (eps_cond - delta * eps')``.
  ``"none"``: no guidance (SD-Turbo); ``"full"``: the usual two passes with the negative prompt.
* **Stochastic similarity filter** (SSF): with cosine similarity ``s`` between the
  input and the last processed input, the frame is skipped (the last output reused) with
  probability ``max(0, (s - threshold) / (1 - threshold))``; at most ``max_skip`` in a row.
* **Precomputation**: prompt embeddings, their blend, the noise for every step
  and the per-step scheduler coefficients are computed when a parameter changes, not per
  frame.
* **Consistency-model step** (Latent Consistency Models, Luo et al., arXiv 2310.04378,
  as StreamDiffusion uses it): ``x0 = (x_t - sqrt(1 - abar_t) * eps) / sqrt(abar_t)``, denoised
  ``= c_out(t) * x0 + c_skip(t) * x_t`` with ``c_skip, c_out`` from diffusers'
  ``LCMScheduler.get_scalings_for_boundary_condition_discrete``; the next step re-noises
  ``sqrt(abar_next) * denoised + sqrt(1 - abar_next) * noise``. The timesteps are
  ``LCMScheduler.set_timesteps(50)``'s, indexed by ``t_index_list``.

Strength -> ``t_index_list`` (50-step grid, as StreamDiffusion's ``num_inference_steps=50``):
the first index is ``round((1 - strength) * 49)`` and the ``steps`` indices are spread evenly
from there to the end of the grid, e.g. strength 0.3, 2 steps -> ``[34, 42]``.

GPU path (CUDA): every GPU operation of the engine runs on its own CUDA stream; frames
go up as uint8 through pinned host buffers with asynchronous copies and are converted to
float on the device; the output comes back the same way, with one host sync per frame
(``engine(frame, control)``). ``acceleration: auto`` captures the whole frame — TAESD
encode, ControlNet, UNet, consistency step, stream-batch buffer update, TAESD decode — as
one CUDA graph (``torch.cuda.CUDAGraph``); ``compile`` runs it through ``torch.compile``.

No recompiles while the stream is live: every value a slider moves (strength ->
timesteps and scheduler coefficients, prompts -> embeddings, seeds -> noise, guidance
scale, delta, ControlNet conditioning scale) lives in a tensor allocated once and updated
in place, so the graph never sees a new Python constant or shape. The ControlNet scale is
a 0-d tensor multiplying the ControlNet's residuals (0 runs the ControlNet and multiplies
by 0 when accelerated; eager, 0 skips it: the same result). The IP-Adapter scale scales
the IP-Adapter's ``to_v_ip`` weights in place (exact: ``to_v_ip`` has no bias), so
diffusers' processors keep a constant scale of 1. The stream batch's first frame runs
the same batch-``steps`` graph ``steps`` times (see :meth:`StreamEngine._prime`), so
there is one shape per engine; :meth:`StreamEngine.warmup` compiles/captures it before
the stream goes live.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import torch
import torch.nn.functional as F

log = logging.getLogger("bridge.avatar.stream")

#: The timestep grid ``t_index_list`` indexes (StreamDiffusion's num_inference_steps).
TIMESTEP_GRID = 50
CFG_TYPES = ("none", "self", "full")
ACCELERATIONS = ("auto", "none", "compile", "cuda-graphs", "compile-graphs")
#: the accelerations that replay a captured CUDA graph per frame
GRAPHED = ("cuda-graphs", "compile-graphs")


def t_index_list(strength: float, steps: int, grid: int = TIMESTEP_GRID) -> list[int]:
    """Indices into the ``grid``-step LCM timestep schedule for ``strength`` in (0, 1].

    Strength 1 starts from pure noise (index 0, t = 999); smaller strength starts later
    (less noise, closer to the input frame). Returns ``steps`` strictly increasing indices.

    Raises:
        ValueError: strength outside (0, 1], or too low for that many distinct steps.
    """
    if not 0.0 < strength <= 1.0:
        raise ValueError(f"strength must be in (0, 1], got {strength}")
    first = int(round((1.0 - strength) * (grid - 1)))
    first = min(first, grid - steps)
    span = grid - first
    indices = [first + int(j * span / steps + 0.5) for j in range(steps)]
    if len(set(indices)) != steps or indices[-1] >= grid:
        raise ValueError(f"strength {strength} is too low for {steps} steps")
    return indices


@dataclass(frozen=True)
class StreamParams:
    """The engine's runtime parameters (all hot-swappable, no reload).

    Attributes:
        prompt / prompt_b / prompt_blend: text prompts; the embedding used is
            ``(1 - prompt_blend) * E(prompt) + prompt_blend * E(prompt_b)``.
        negative_prompt: used by ``cfg_type="full"`` only.
        strength: img2img strength in (0, 1], mapped to ``t_index_list``.
        guidance_scale: classifier-free guidance scale (ignored with ``cfg_type="none"``).
        delta: residual-CFG magnitude moderation coefficient (``cfg_type="self"``).
        seed / seed_b / seed_blend: noise = normalised blend of the two seeds' noise.
        controlnet_conditioning_scale: ControlNet residual scale (0 skips the ControlNet).
        ip_adapter_scale: IP-Adapter scale (0 without reference images).
        similarity_filter / similarity_threshold / similarity_max_skip: the stochastic
            similarity filter.
    """

    prompt: str = ""
    prompt_b: str = ""
    prompt_blend: float = 0.0
    negative_prompt: str = ""
    strength: float = 0.5
    guidance_scale: float = 1.0
    delta: float = 1.0
    seed: int = 2
    seed_b: int = 3
    seed_blend: float = 0.0
    controlnet_conditioning_scale: float = 1.0
    ip_adapter_scale: float = 0.6
    similarity_filter: bool = False
    similarity_threshold: float = 0.98
    similarity_max_skip: int = 10


class SimilarityFilter:
    """Stochastic similarity filter (StreamDiffusion, arXiv 2312.12491).

    Deterministic for a given seed (its own ``random.Random``).
    """

    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(seed)
        self._ref: torch.Tensor | None = None
        self.skipped_in_row = 0
        self.last_similarity = 0.0

    def reset(self, seed: int = 0) -> None:
        """Forget the reference frame."""
        self._rng.seed(seed)
        self._ref = None
        self.skipped_in_row = 0

    def skip(self, image: torch.Tensor, threshold: float, max_skip: int) -> bool:
        """True when ``image`` (any shape, same as the last) should be skipped.

        ``image`` becomes the new reference when it is not skipped.
        """
        ref = self._ref
        if ref is None or ref.shape != image.shape:
            self._ref = image.detach().clone()
            self.skipped_in_row = 0
            return False
        sim = F.cosine_similarity(image.reshape(1, -1).float(), ref.reshape(1, -1).float()).item()
        self.last_similarity = sim
        p_skip = max(0.0, (sim - threshold) / (1.0 - threshold)) if threshold < 1.0 else 0.0
        if self.skipped_in_row < max_skip and self._rng.random() < p_skip:
            self.skipped_in_row += 1
            return True
        ref.copy_(image)
        self.skipped_in_row = 0
        return False


@dataclass
class PromptCache:
    """Text -> (embeddings (1, 77, D), pooled (1, P) or None), bounded, most recent kept."""

    encode: Callable[[str], tuple[torch.Tensor, torch.Tensor | None]]
    size: int = 16
    _items: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = field(default_factory=dict)

    def get(self, text: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        item = self._items.pop(text, None)
        if item is None:
            item = self.encode(text)
            while len(self._items) >= self.size:
                self._items.pop(next(iter(self._items)))
        self._items[text] = item
        return item


class StreamEngine:
    """Real-time img2img over a stream of frames, StreamDiffusion-style (see module doc).

    Args:
        unet: diffusers ``UNet2DConditionModel`` (SD 1.5 / 2.1 / SDXL).
        vae: ``AutoencoderTiny`` (TAESD) or ``AutoencoderKL``.
        scheduler: any diffusers scheduler of the base model; an ``LCMScheduler`` is built
            from its config.
        encode_prompt: text -> (embeddings (1, 77, D), pooled (1, P) for SDXL else None).
        controlnet: optional ``ControlNetModel`` of the same family.
        encode_images: optional, for an IP-Adapter: list of (H, W, 3) uint8 RGB -> image
            embeddings (N, E).
        set_ip_adapter_scale: optional fallback for a UNet whose IP-Adapter layers are not
            diffusers' ``IPAdapterAttnProcessor*`` (then the scale is a Python float and a
            compiled UNet recompiles when it moves); diffusers' layers are scaled in place.
        width, height: output size in pixels (multiples of 8; the UNet may need 64).
        steps: number of denoising steps (len of ``t_index_list``), 1-4.
        stream_batch: batch the steps of consecutive frames (latency ``steps - 1`` frames).
        cfg_type: ``none`` | ``self`` | ``full``.
        device, dtype: where and how the models run.
        acceleration: ``auto`` (``cuda-graphs`` on CUDA, ``none`` elsewhere) | ``none`` |
            ``compile`` (``torch.compile`` of the whole frame) | ``cuda-graphs`` (the whole
            frame, TAESD included, captured as one CUDA graph) | ``compile-graphs`` (the UNet,
            ControlNet and TAESD each ``torch.compile``-d with inductor, without inductor's own
            CUDA graphs, inside the engine's whole-frame capture: fused kernels, one launch).
            CUDA only, unless ``compile_backend`` is given (then compiled, never captured).
        channels_last: channels-last memory format (CUDA only). A lever to measure: cuDNN
            convolutions prefer it, GroupNorm runs NCHW on CUDA (the GPU check times both).
        cudnn_benchmark: set ``torch.backends.cudnn.benchmark`` (a process-wide flag) before
            the warm-up, so cuDNN picks its fastest convolution for the fixed shapes (CUDA only).
        blocking_wait: the one per-frame host wait (``host=True``) sleeps on a blocking CUDA
            event instead of spinning a CPU core for the whole GPU frame (the core an artist's
            TouchDesigner needs).
        controlnet_free_graph: with ``cuda-graphs``, also capture a second graph without the
            ControlNet, replayed for frames with no pose image or a ControlNet scale of 0.
        sdxl: add SDXL's pooled text embedding and time ids.
        compile_backend: the ``torch.compile`` backend for ``compile`` (default inductor);
            giving one allows ``compile`` on any device (tests use ``"eager"`` on the CPU).

    Call :meth:`update` with :class:`StreamParams` (cheap when nothing changed), then
    ``engine(frame, control)`` (host in, host out, one host sync) or :meth:`prepare` /
    :meth:`process` (device tensors, no sync). With acceleration, call :meth:`warmup`
    before the stream goes live.

    Raises:
        ValueError: bad ``cfg_type``, ``steps``, ``acceleration`` or a size the model cannot take.
    """

    def __init__(
        self,
        *,
        unet: Any,
        vae: Any,
        scheduler: Any,
        encode_prompt: Callable[[str], tuple[torch.Tensor, torch.Tensor | None]],
        controlnet: Any | None = None,
        encode_images: Callable[[list[Any]], torch.Tensor] | None = None,
        set_ip_adapter_scale: Callable[[float], None] | None = None,
        width: int = 512,
        height: int = 512,
        steps: int = 1,
        stream_batch: bool = True,
        cfg_type: str = "none",
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        acceleration: str = "auto",
        channels_last: bool = True,
        cudnn_benchmark: bool = True,
        blocking_wait: bool = True,
        controlnet_free_graph: bool = True,
        sdxl: bool = False,
        compile_backend: str | Callable[..., Any] | None = None,
    ) -> None:
        from diffusers.schedulers import LCMScheduler

        if cfg_type not in CFG_TYPES:
            raise ValueError(f"cfg_type must be one of {CFG_TYPES}, got {cfg_type!r}")
        if not 1 <= steps <= 4:
            raise ValueError(f"steps must be 1-4, got {steps}")
        if acceleration not in ACCELERATIONS:
            raise ValueError(f"acceleration must be one of {ACCELERATIONS}, got {acceleration!r}")
        self.device = torch.device(device)
        self.dtype = dtype
        self.width, self.height, self.steps = int(width), int(height), int(steps)
        self.stream_batch, self.cfg_type, self.sdxl = bool(stream_batch), cfg_type, bool(sdxl)
        self.unet, self.vae, self.controlnet = unet, vae, controlnet
        self.tiny_vae = type(vae).__name__ == "AutoencoderTiny"
        self.vae_scale = float(getattr(vae.config, "scaling_factor", 1.0))
        # SDXL's VAE (and diffusers' AutoencoderKL default) overflows in float16: diffusers runs it in
        # float32 when its config says force_upcast (StableDiffusionXLPipeline.upcast_vae); so do we.
        self.vae_upcast = (not self.tiny_vae and dtype == torch.float16 and bool(getattr(vae.config, "force_upcast", False)))
        if self.vae_upcast:
            vae.to(dtype=torch.float32)
        self.latent_channels = int(unet.config.in_channels)
        vae_factor = 2 ** (len(vae.config.block_out_channels) - 1) if not self.tiny_vae else 8
        self.latent_h, self.latent_w = self.height // vae_factor, self.width // vae_factor
        unet_factor = 2 ** (len(unet.config.block_out_channels) - 1)
        if self.latent_h % unet_factor or self.latent_w % unet_factor:
            raise ValueError(f"width and height must be multiples of {vae_factor * unet_factor} for this model, got {width}x{height}")
        self.prediction_type = getattr(scheduler.config, "prediction_type", "epsilon")
        self.scheduler = LCMScheduler.from_config(scheduler.config)
        self.scheduler.set_timesteps(TIMESTEP_GRID, device="cpu")
        self._prompts = PromptCache(encode_prompt)
        self._encode_images = encode_images
        self._set_ip_scale = set_ip_adapter_scale
        self.filter = SimilarityFilter()
        self.profile = False
        self.skipped = False
        self.cuda = self.device.type == "cuda"
        self.cudnn_benchmark, self.blocking_wait = bool(cudnn_benchmark), bool(blocking_wait)
        self.controlnet_free_graph = bool(controlnet_free_graph) and controlnet is not None
        #: one thread at a time drives the engine: two station threads sharing it (a preset switch)
        #: would interleave writes of the graph's static inputs and replays (reentrant: update in process)
        self.lock = threading.RLock()
        #: recorded on the engine's stream after each frame: the caller's stream waits on it (process)
        self.done: Any = None
        #: the engine's own CUDA stream (None off CUDA): every GPU op of the engine is queued on it
        self.stream = torch.cuda.Stream(self.device) if self.cuda else None
        self._events: list[tuple[str, Any, Any]] = []
        self._cpu_ms: dict[str, float] = dict.fromkeys(PARTS, 0.0)
        self._params: StreamParams | None = None
        self._last_output: torch.Tensor | None = None
        self._t_indices: list[int] = []
        self._primed = False
        self._had_control = True
        self._control_scale = 1.0
        self.acceleration = self._resolve_acceleration(acceleration, compile_backend)
        self._graph: Any = None
        self._graph_out: torch.Tensor | None = None
        self._graph_no_cn: Any = None  # the second graph, without the ControlNet (controlnet_free_graph)
        self._graph_no_cn_out: torch.Tensor | None = None
        self._recapture: threading.Thread | None = None  # a re-capture running in the background
        self._recaptured: tuple[Any, ...] | None = None  # its result, installed at the next frame
        self._warm = False
        self.channels_last = bool(channels_last) and self.cuda
        if self.channels_last:  # on the stream the weights were made on, so their freed memory returns there
            for model in (self.unet, self.controlnet, self.vae):
                if model is not None:
                    model.to(memory_format=torch.channels_last)
        if self.stream is not None:  # the weights were put on the device (and converted) on the default stream
            self.stream.wait_stream(torch.cuda.current_stream(self.device))
        with self._on_stream():
            self._allocate()
            self._ip_layers = self._find_ip_value_layers()
            self.has_ip_adapter = encode_images is not None
            if self.has_ip_adapter:
                self._ip_embeds = torch.zeros(1, 1, self._image_embed_dim(), device=self.device, dtype=dtype)
            self._ip_scale_applied: float | None = None
            self._has_refs = False
            self.update(StreamParams())
        self._frame_fn: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor] = self._frame
        #: compiled model calls (compile-graphs); None: the modules themselves, looked up at each call
        self._unet_fn = self._controlnet_fn = self._encode_fn = self._decode_fn = None
        if self.acceleration == "compile-graphs":  # inductor's default mode: no CUDA graphs of its own
            backend = compile_backend or "inductor"
            compiled = (lambda fn: torch.compile(fn, backend=backend, dynamic=False, fullgraph=False))
            self._unet_fn, self._encode_fn, self._decode_fn = compiled(self.unet), compiled(self.vae.encode), compiled(self.vae.decode)
            if self.controlnet is not None:
                self._controlnet_fn = compiled(self.controlnet)
        if self.acceleration == "compile":
            backend = compile_backend or "inductor"
            self._frame_fn = torch.compile(self._frame, backend=backend, dynamic=False, fullgraph=False)

    # ----------------------------------------------------------------- setup
    def _resolve_acceleration(self, acceleration: str, backend: Any) -> str:
        if acceleration == "auto":
            return "cuda-graphs" if self.cuda else "none"
        if acceleration in ("compile", "compile-graphs") and backend is not None:
            return acceleration
        if acceleration != "none" and not self.cuda:
            log.warning("avatar: acceleration %r needs CUDA; running without it on %s", acceleration, self.device)
            return "none"
        return acceleration

    def _allocate(self) -> None:
        """The state every frame reads, allocated once and updated in place (graph inputs)."""
        dev, dt, n = self.device, self.dtype, self.steps
        latent = (self.latent_channels, self.latent_h, self.latent_w)
        self._timesteps = torch.zeros(n, device=dev, dtype=torch.long)
        self._a, self._b, self._c_skip, self._c_out = (torch.zeros(n, 1, 1, 1, device=dev, dtype=dt) for _ in range(4))
        self._noise = torch.zeros(n, *latent, device=dev, dtype=dt)
        #: runtime scales as 0-d tensors: moving a slider fills them, never recompiles
        self._cn_scale = torch.ones((), device=dev, dtype=torch.float32)
        self._guidance = torch.ones((), device=dev, dtype=torch.float32)
        self._delta = torch.ones((), device=dev, dtype=torch.float32)
        self._embeds: torch.Tensor | None = None
        self._neg_embeds: torch.Tensor | None = None
        self._added: dict[str, torch.Tensor] = {}
        self._neg_added: dict[str, torch.Tensor] = {}
        if self.sdxl:
            self._time_ids = torch.tensor([[self.height, self.width, 0, 0, self.height, self.width]], device=dev, dtype=dt)
        batched = self.stream_batch and n > 1
        self._buffer = torch.zeros(n - 1, *latent, device=dev, dtype=dt) if batched else None
        self._buffer_ref = torch.zeros(n - 1, *latent, device=dev, dtype=dt) if batched else None
        self._image_in = torch.zeros(1, 3, self.height, self.width, device=dev, dtype=dt)
        self._control_in = torch.zeros(1, 3, self.height, self.width, device=dev, dtype=dt) if self.controlnet is not None else None

    def _find_ip_value_layers(self) -> list[tuple[torch.nn.Linear, torch.Tensor]]:
        """(``to_v_ip`` layer, its original weight) of every diffusers IP-Adapter attention processor.

        The IP-Adapter adds ``scale * softmax(q k_ip^T) v_ip`` with ``v_ip = to_v_ip(tokens)`` (no
        bias), so scaling ``to_v_ip``'s weight by ``scale`` gives the same result while the
        processors' own ``scale`` stays the constant 1.0: nothing a compiled graph guards on moves.
        """
        layers = []
        procs = getattr(self.unet, "attn_processors", {}) or {}
        for proc in procs.values():
            to_v = getattr(proc, "to_v_ip", None)
            if to_v is None or not hasattr(proc, "scale"):
                continue
            proc.scale = [1.0] * len(proc.scale)
            for linear in to_v:
                if getattr(linear, "bias", None) is not None:
                    return []  # not the layer this trick is exact for: use the fallback
                layers.append((linear, linear.weight.detach().clone()))
        return layers

    def _image_embed_dim(self) -> int:
        proj = getattr(self.unet, "encoder_hid_proj", None)
        layer = proj.image_projection_layers[0] if proj is not None else None
        return int(layer.image_embeds.in_features) if layer is not None else 1024

    def _on_stream(self) -> Any:
        return torch.cuda.stream(self.stream) if self.stream is not None else contextlib.nullcontext()

    @property
    def latency_frames(self) -> int:
        """Frames between an input and its output: ``steps - 1`` with stream batch, else 0."""
        return self.steps - 1 if self.stream_batch else 0

    @property
    def t_indices(self) -> list[int]:
        """The current ``t_index_list``."""
        return list(self._t_indices)

    def reset(self) -> None:
        """Forget frames in flight, the last output and the filter's reference frame."""
        with self.lock:
            self._reset()

    def _reset(self) -> None:
        self._primed = False
        self._last_output = None
        self.filter.reset(self._params.seed if self._params else 0)

    # ----------------------------------------------------------------- parameters
    def update(self, params: StreamParams, reference_images: list[Any] | None = None) -> None:
        """Apply runtime parameters; only what changed is recomputed, in place.

        Every per-frame value lives in a tensor allocated once (scales included), so a
        compiled or captured frame never recompiles when a slider moves. New reference
        images with another count than before change the IP-Adapter token count: that one
        change re-captures the graph (logged).

        Args:
            params: the new parameters.
            reference_images: new IP-Adapter reference images ((H, W, 3) uint8 RGB), or
                None to keep the current ones; ``[]`` clears them.

        Raises:
            ValueError: a strength too low for the number of steps.
        """
        with self.lock:
            self._update(params, reference_images)

    def _update(self, params: StreamParams, reference_images: list[Any] | None) -> None:
        old = self._params
        changed = (lambda *names: old is None or any(getattr(old, n) != getattr(params, n) for n in names))
        with self._on_stream(), torch.no_grad():
            if changed("strength"):
                indices = t_index_list(params.strength, self.steps)
                if indices != self._t_indices:
                    self._set_timesteps(indices)
            if changed("prompt", "prompt_b", "prompt_blend"):
                embeds, pooled = self._blend_prompts(params)
                self._embeds = _assign(self._embeds, embeds)
                if self.sdxl:
                    self._added = {"text_embeds": _assign(self._added.get("text_embeds"), pooled), "time_ids": self._time_ids}
            if self.cfg_type == "full" and changed("negative_prompt"):
                neg, pooled = self._prompts.get(params.negative_prompt)
                self._neg_embeds = _assign(self._neg_embeds, neg.to(self.device, self.dtype))
                if self.sdxl:
                    self._neg_added = {"text_embeds": _assign(self._neg_added.get("text_embeds"), pooled.to(self.device, self.dtype)),
                                       "time_ids": self._time_ids}
            if changed("seed", "seed_b", "seed_blend"):
                self._noise.copy_(self._make_noise(params))
                self.filter.reset(params.seed)
            if reference_images is not None and self.has_ip_adapter:
                self._set_reference_images(reference_images)
            if self.has_ip_adapter:
                scale = float(params.ip_adapter_scale) if self._has_refs else 0.0
                if scale != self._ip_scale_applied:
                    self._apply_ip_scale(scale)
            if changed("guidance_scale"):
                self._guidance.fill_(float(params.guidance_scale))
            if changed("delta"):
                self._delta.fill_(float(params.delta))
            self._control_scale = float(params.controlnet_conditioning_scale)
            if changed("controlnet_conditioning_scale"):
                self._cn_scale.fill_(self._control_scale if self._had_control else 0.0)
        self._params = params

    def _set_reference_images(self, images: list[Any]) -> None:
        if images:
            emb = self._encode_images(images)  # type: ignore[misc]
            emb = emb.to(self.device, self.dtype).reshape(1, len(images), -1)
            self._has_refs = True
        else:  # zeros of the same shape, at scale 0: no identity and no new graph shape
            emb = torch.zeros_like(self._ip_embeds)
            self._has_refs = False
        if emb.shape != self._ip_embeds.shape:
            if self._warm:
                log.info("avatar: %d reference images (was %d): the frame graph is rebuilt in the background "
                         "(frames run without it meanwhile)", emb.shape[1], self._ip_embeds.shape[1])
            self._ip_embeds = emb
            self._graph = self._graph_out = None
        else:
            self._ip_embeds.copy_(emb)

    def _apply_ip_scale(self, scale: float) -> None:
        if self._ip_layers:
            for linear, weight in self._ip_layers:
                torch.mul(weight, scale, out=linear.weight.data)
        elif self._set_ip_scale is not None:
            self._set_ip_scale(scale)
        self._ip_scale_applied = scale

    def _blend_prompts(self, p: StreamParams) -> tuple[torch.Tensor, torch.Tensor | None]:
        emb, pooled = self._prompts.get(p.prompt)
        w = float(p.prompt_blend)
        if w > 0.0:
            emb_b, pooled_b = self._prompts.get(p.prompt_b)
            emb = torch.lerp(emb.float(), emb_b.float(), w)
            if pooled is not None and pooled_b is not None:
                pooled = torch.lerp(pooled.float(), pooled_b.float(), w)
        return emb.to(self.device, self.dtype), None if pooled is None else pooled.to(self.device, self.dtype)

    def _make_noise(self, p: StreamParams) -> torch.Tensor:
        shape = (self.steps, self.latent_channels, self.latent_h, self.latent_w)

        def noise(seed: int) -> torch.Tensor:
            return torch.randn(shape, generator=torch.Generator("cpu").manual_seed(int(seed)), dtype=torch.float32)

        n = noise(p.seed)
        w = float(p.seed_blend)
        if w > 0.0:  # a blend of two unit Gaussians, rescaled to unit variance
            n = ((1.0 - w) * n + w * noise(p.seed_b)) / math.sqrt((1.0 - w) ** 2 + w ** 2)
        return n.to(self.device, self.dtype)

    def _set_timesteps(self, indices: list[int]) -> None:
        sched = self.scheduler
        ts = [int(sched.timesteps[i]) for i in indices]
        abar = sched.alphas_cumprod[ts].to(torch.float32)
        scalings = [sched.get_scalings_for_boundary_condition_discrete(t) for t in ts]

        def col(values: Any) -> torch.Tensor:
            return torch.as_tensor(values, dtype=torch.float32).reshape(-1, 1, 1, 1).to(self.device, self.dtype)

        self._t_indices = indices
        self._timesteps.copy_(torch.tensor(ts, dtype=torch.long))
        self._a.copy_(col(abar.sqrt()))
        self._b.copy_(col((1.0 - abar).sqrt()))
        self._c_skip.copy_(col([float(s[0]) for s in scalings]))
        self._c_out.copy_(col([float(s[1]) for s in scalings]))
        self._primed = False  # frames in flight were at the old timesteps

    # ----------------------------------------------------------------- warm-up
    def warmup(self) -> None:
        """Compile / capture every shape the stream will run, before it goes live.

        One graph per engine: the stream batch's first frame runs the same batch-``steps``
        graph ``steps`` times (see :meth:`process`), so a reset or a new strength never
        meets an uncompiled shape. Leaves the engine reset. A no-op without acceleration.
        """
        with self.lock:
            # before any warm-up frame, so cuDNN times its algorithms for the fixed shapes once (a
            # process-wide flag: the engine warmed last sets it; harmless off CUDA)
            torch.backends.cudnn.benchmark = self.cudnn_benchmark
            if self.acceleration == "none":
                return
            self._warmup()

    def _warmup(self) -> None:
        t0 = time.perf_counter()
        zeros = torch.zeros(1, 3, self.height, self.width, device=self.device, dtype=self.dtype)
        control = zeros if self.controlnet is not None else None
        with torch.no_grad(), self._on_stream():
            if self.acceleration in GRAPHED and self.cuda:
                self._capture_or_eager()
            else:
                try:
                    for _ in range(self.steps + 1):  # priming calls, then a steady frame
                        self._run(zeros, control)
                except Exception as exc:  # noqa: BLE001 - a compiler failure (inductor, Triton): stream eagerly
                    self._give_up_acceleration("torch.compile", exc)
        if self.stream is not None:
            self.stream.synchronize()
        self._warm = True
        self.reset()
        log.info("avatar: %s warm-up took %.1f s", self.acceleration, time.perf_counter() - t0)

    def _give_up_acceleration(self, what: str, exc: BaseException) -> None:
        """Keep streaming without acceleration after ``what`` failed (one warning line)."""
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        log.warning("avatar: %s failed (%s); running without acceleration", what, first)
        self.acceleration, self._graph, self._graph_out, self._frame_fn = "none", None, None, self._frame
        self._unet_fn = self._controlnet_fn = self._encode_fn = self._decode_fn = None
        self._graph_no_cn = self._graph_no_cn_out = None

    def _capture_or_eager(self) -> None:
        """:meth:`_capture`, or on failure (an op the capture cannot take) no acceleration from then on."""
        try:
            self._capture()
        except Exception as exc:  # noqa: BLE001 - an op the capture cannot take, or an inductor failure (compile-graphs)
            self._give_up_acceleration("CUDA graph capture", exc)

    def _capture(self) -> None:
        """Capture :meth:`_frame` (encode, ControlNet, UNet, step, decode) as one CUDA graph (and the
        ControlNet-free one) on the engine's stream, before the stream is live."""
        self._image_in.zero_()
        if self._control_in is not None:
            self._control_in.zero_()
        assert self.stream is not None
        self._install(self._capture_graphs(self.stream))

    def _install(self, graphs: tuple[Any, ...]) -> None:
        self._graph, self._graph_out, self._graph_no_cn, self._graph_no_cn_out = graphs

    def _capture_graphs(self, stream: Any) -> tuple[Any, ...]:
        """(graph, its output, ControlNet-free graph or None, its output or None), captured on ``stream``.

        Reads only the engine's static tensors; warm-up runs first on ``stream`` (cuDNN/cuBLAS
        workspaces) as ``torch.cuda.graph`` requires.
        """
        with torch.cuda.stream(stream), torch.no_grad():
            for _ in range(3):  # warm-up runs on the capture stream before capturing
                self._frame(self._image_in, self._control_in)
            stream.synchronize()
            graph = torch.cuda.CUDAGraph()
            # thread_local: another thread streaming meanwhile (the previous engine, or this one's live
            # frames during a background re-capture) is not a capture error
            with torch.cuda.graph(graph, stream=stream, capture_error_mode="thread_local"):
                out = self._frame(self._image_in, self._control_in)
            if not self.controlnet_free_graph:
                return graph, out, None, None
            # same inputs and state, no control image: the ControlNet is left out; shares the first graph's pool
            self._frame(self._image_in, None)
            stream.synchronize()
            graph2 = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph2, pool=graph.pool(), stream=stream, capture_error_mode="thread_local"):
                out2 = self._frame(self._image_in, None)
            return graph, out, graph2, out2

    def _recapture_in_background(self) -> None:
        """After a reference-count change on a live stream: capture the new graphs on a thread of their
        own (and a stream of their own), so the frame thread is never frozen by ``torch.cuda.graph``'s
        device sync and cache flush; frames run eagerly meanwhile and the graphs are installed at
        the start of the next frame after the capture ends (:meth:`_process`). While it runs, the
        capture's warm-up frames also advance a stream batch's in-flight rows (steps > 1): the
        batch restarts when the graphs are installed."""
        if self._recapture is not None:
            return
        embeds = self._ip_embeds

        def capture() -> None:
            try:
                stream = torch.cuda.Stream(self.device) if self.cuda else None
                graphs: tuple[Any, ...] = self._capture_graphs(stream)
            except Exception as exc:  # noqa: BLE001 - a capture failure: eager from then on (logged at install)
                graphs = (exc,)
            self._recaptured = (embeds, graphs)

        self._recapture = threading.Thread(target=capture, name="avatar-recapture", daemon=True)
        self._recapture.start()

    def _install_recapture(self) -> None:
        """At a frame boundary (under the lock): install a finished background capture, if any."""
        if self._recapture is None or self._recaptured is None:
            return
        self._recapture.join()
        (embeds, graphs), self._recapture, self._recaptured = self._recaptured, None, None
        if embeds is not self._ip_embeds:  # the count changed again meanwhile: capture once more
            self._recapture_in_background()
        elif isinstance(graphs[0], BaseException):
            self._give_up_acceleration("CUDA graph re-capture", graphs[0])
        else:
            self._install(graphs)
            self._primed = False

    # ----------------------------------------------------------------- per frame
    def prepare(self, frame: torch.Tensor, fit: str = "crop") -> torch.Tensor:
        """(1, h, w, 3) in [0, 255] (uint8 best: 4x less to copy) -> (1, 3, H, W) in [-1, 1] on the device.

        A host frame goes through a pinned buffer with an asynchronous copy on the
        engine's stream; the conversion to float happens on the device. ``fit="crop"``
        crops the centre to the output aspect ratio first; ``"stretch"`` does not.
        """
        self._adopt(frame)
        with self._on_stream():
            x = self._resize(self._upload(frame), fit)
            return x.mul_(2.0 / 255.0).sub_(1.0).to(self.dtype)

    def prepare_control(self, control: torch.Tensor | None, fit: str = "crop") -> torch.Tensor | None:
        """(1, h, w, 3) uint8 in [0, 255] or float in [0, 1] -> (1, 3, H, W) in [0, 1] on the device, or None."""
        if control is None or self.controlnet is None:
            return None
        self._adopt(control)
        with self._on_stream():
            x = self._resize(self._upload(control), fit)
            if control.dtype == torch.uint8:
                x.mul_(1.0 / 255.0)
            return x.to(self.dtype)

    def _adopt(self, *tensors: torch.Tensor | None) -> None:
        """Device tensors made on the caller's stream: the engine's stream waits for that stream's work,
        and the caching allocator is told the engine's stream uses them (``record_stream``), so their
        memory is not handed out again while the engine still reads them. A no-op off CUDA."""
        if self.stream is None:
            return
        caller = torch.cuda.current_stream(self.device)
        if caller == self.stream:
            return
        waited = False
        for t in tensors:
            if t is not None and t.device.type == "cuda":
                if not waited:
                    self.stream.wait_stream(caller)
                    waited = True
                t.record_stream(self.stream)

    def _hand_back(self, out: torch.Tensor) -> torch.Tensor:
        """A device output for the caller: its current stream waits for the frame (an event on the
        engine's stream, also kept as :attr:`done` for a host thread to ``synchronize`` on), and the
        output's memory is marked as used by that stream. A no-op off CUDA."""
        if self.stream is None or out.device.type != "cuda":
            return out
        caller = torch.cuda.current_stream(self.device)
        self.done = torch.cuda.Event(blocking=self.blocking_wait)
        self.done.record(self.stream)
        if caller != self.stream:
            caller.wait_event(self.done)
            out.record_stream(caller)
        return out

    def _upload(self, frame: torch.Tensor) -> torch.Tensor:
        if self.cuda and frame.device.type == "cpu":
            staged = torch.empty(frame.shape, dtype=frame.dtype, pin_memory=True)  # from the caching host allocator
            staged.copy_(frame)
            return staged.to(self.device, non_blocking=True)
        return frame.to(self.device)

    def _resize(self, frame: torch.Tensor, fit: str) -> torch.Tensor:
        x = frame.permute(0, 3, 1, 2)[:, :3].float()
        h, w = x.shape[-2:]
        if fit == "crop":
            target = self.width / self.height
            if w / h > target:
                cw = max(1, int(round(h * target)))
                x = x[..., (w - cw) // 2:(w - cw) // 2 + cw]
            else:
                ch = max(1, int(round(w / target)))
                x = x[..., (h - ch) // 2:(h - ch) // 2 + ch, :]
        if tuple(x.shape[-2:]) != (self.height, self.width):
            down = x.shape[-2] > self.height or x.shape[-1] > self.width
            x = F.interpolate(x, size=(self.height, self.width), mode="bilinear", align_corners=False, antialias=down)
        elif x.untyped_storage().data_ptr() == frame.untyped_storage().data_ptr():
            x = x.clone()  # prepare() works in place: never on the caller's frame
        return x

    def __call__(self, frame: torch.Tensor, control: torch.Tensor | None = None, fit: str = "crop",
                 uint8: bool = False) -> torch.Tensor:
        """One frame in, one frame out, on the host: (1, h, w, 3) [0,255] (+ control (1, h, w, 3)
        uint8 [0,255] or float [0,1]) -> (1, H, W, 3) float32 [0,1] on the CPU, or with ``uint8``
        uint8 [0, 255] (``round(255 * x)``, as the chain rounds a float frame), converted on the
        device so a quarter of the bytes cross to the host.

        On CUDA this is the whole frame with one host sync: the upload (pinned, async),
        the frame's kernels (or its CUDA graph) and the download (to a pinned tensor, async)
        are queued on the engine's stream, then the host waits for that stream's event.
        The similarity filter looks at the host frame, so a skipped frame is never uploaded.
        """
        with self.lock:
            p = self._params
            assert p is not None
            if p.similarity_filter and frame.device.type == "cpu":
                if self._filter_skip(_filter_view(frame), p):
                    return self._last_output  # type: ignore[return-value]
                image, cond = self.prepare(frame, fit), self.prepare_control(control, fit)
                return self._process(image, cond, host=True, uint8=uint8)
            return self.process(self.prepare(frame, fit), self.prepare_control(control, fit), host=True, uint8=uint8)

    def process(self, image: torch.Tensor, control: torch.Tensor | None = None, host: bool = False,
                uint8: bool = False) -> torch.Tensor:
        """Prepared image (1, 3, H, W) in [-1, 1] and control (1, 3, H, W) in [0, 1] or None
        -> output (1, H, W, 3) float32 in [0, 1]: on the device (no host sync), or on the host
        with ``host`` (one sync). A new tensor for each processed frame, the previous output
        again for a frame the similarity filter skips (``skipped``). ``uint8``: (1, H, W, 3) uint8
        [0, 255] instead (see :meth:`__call__`).

        Device tensors may come from any stream: the engine's stream waits for the caller's.
        A device output is safe to use on the caller's current stream when this returns (that
        stream waits for the frame's event); a host thread that reads it otherwise waits on
        :attr:`done`. Thread-safe: one frame at a time per engine (:attr:`lock`)."""
        with self.lock:
            p = self._params
            assert p is not None
            if p.similarity_filter and self._filter_skip(image, p):
                return self._last_output  # type: ignore[return-value]
            self._adopt(image, control)
            out = self._process(image, control, host, uint8)
            return out if host else self._hand_back(out)

    def _filter_skip(self, view: torch.Tensor, p: StreamParams) -> bool:
        self.skipped = bool(self.filter.skip(view, p.similarity_threshold, p.similarity_max_skip) and self._last_output is not None)
        return self.skipped

    def _process(self, image: torch.Tensor, control: torch.Tensor | None, host: bool, uint8: bool = False) -> torch.Tensor:
        self.skipped = False
        self._events.clear()
        for key in self._cpu_ms:
            self._cpu_ms[key] = 0.0
        has_control = control is not None
        if has_control != self._had_control:  # a missing pose image: ControlNet at 0, same graph
            self._had_control = has_control
            with self._on_stream():
                self._cn_scale.fill_(self._control_scale if has_control else 0.0)
        with torch.no_grad(), self._on_stream():  # (not inference_mode: later stages may modify the output)
            if self._graph is None and (self.acceleration == "cuda-graphs" or (self.acceleration in GRAPHED and self.cuda)):
                # only when the reference-image count changed after warm-up: capture off the frame thread
                self._install_recapture()
                if self._graph is None:
                    self._recapture_in_background()
            if not self._primed:
                self._prime()
                calls = self.steps if self._buffer is not None else 1
                self._primed = True
            else:
                calls = 1
            frame_timer = _Timer(self, "frame") if self.profile else _NULL
            with frame_timer:  # the whole frame on the device, graph or not
                for _ in range(calls):
                    out = self._run(image, control)
            if uint8:  # a new tensor, on the device
                out = out.mul(255.0).clamp_(0.0, 255.0).round_().to(torch.uint8)
            if host and self.cuda:
                out = self._download(out)
            elif self._graph is not None and not uint8:
                out = out.clone()  # the graph's output is overwritten by the next replay
        self._last_output = out
        return out

    def _prime(self) -> None:
        """Start of a stream-batch run: in-flight rows are zero and get filled by the next ``steps - 1`` calls.

        After call ``k`` the first ``k`` rows of the buffer hold the frame advanced ``1..k`` steps,
        exactly as running its steps one after another (each row is denoised on its own);
        the ``steps``-th call returns the frame fully denoised. So the first frame runs the
        same batch-``steps`` graph ``steps`` times instead of needing a batch-1 graph.
        """
        if self._buffer is not None and self._buffer_ref is not None:
            self._buffer.zero_()
            self._buffer_ref.zero_()

    def _run(self, image: torch.Tensor, control: torch.Tensor | None) -> torch.Tensor:
        if self.acceleration == "none":
            return self._frame_fn(image, control)
        # accelerated: the graph's inputs are always the same tensors (same storage, strides, dtype)
        if self._recapture is not None and self._graph is None:
            return self._frame(image, control)  # a background re-capture reads the static inputs: leave them alone
        if image is not self._image_in:
            self._image_in.copy_(image)
        if self._control_in is not None and control is not self._control_in:
            if control is None:
                self._control_in.zero_()  # no pose image: the ControlNet scale is 0 for this frame
            else:
                self._control_in.copy_(control)
        if self._graph_no_cn is not None and (control is None or self._control_scale == 0.0):
            self._graph_no_cn.replay()  # no pose or scale 0: the same frame without the ControlNet's work
            assert self._graph_no_cn_out is not None
            return self._graph_no_cn_out
        if self._graph is not None:
            self._graph.replay()
            assert self._graph_out is not None
            return self._graph_out
        return self._frame_fn(self._image_in, self._control_in)

    def _download(self, out: torch.Tensor) -> torch.Tensor:
        """Device output -> a new pinned host tensor: async copy on the engine's stream, then the one host sync."""
        host = torch.empty(out.shape, dtype=out.dtype, pin_memory=True)
        host.copy_(out, non_blocking=True)
        done = torch.cuda.Event(blocking=self.blocking_wait)  # blocking: the host thread sleeps, no spinning core
        done.record(self.stream)
        self.done = done
        done.synchronize()
        return host

    # ----------------------------------------------------------------- the frame (compiled / captured as one graph)
    def _frame(self, image: torch.Tensor, control: torch.Tensor | None) -> torch.Tensor:
        """One frame: encode -> denoise (ControlNet + UNet + consistency step) -> decode.

        Reads only tensors allocated once (:meth:`_allocate`) and constants of the engine, and
        updates the stream-batch buffer in place, so one compiled graph / CUDA graph serves
        every frame whatever the sliders say. (1, 3, H, W) -> (1, H, W, 3) float32 [0, 1].
        """
        with self._timed("encode"):
            z = self._encode(image)
        if self._buffer is not None:
            latent = self._batched(z, control)
        else:
            latent = self._sequential(z, control)
        with self._timed("decode"):
            return self._decode(latent)

    def _sequential(self, z: torch.Tensor, control: torch.Tensor | None) -> torch.Tensor:
        """All steps of one frame in turn (1 step, or stream batch off)."""
        a, b, noise = self._a, self._b, self._noise
        x = a[0] * z + b[0] * noise[0:1]
        denoised = x
        for i in range(self.steps):
            denoised = self._denoise(x, slice(i, i + 1), z, control)
            if i + 1 < self.steps:
                x = a[i + 1] * denoised + b[i + 1] * noise[i + 1:i + 2]
        return denoised

    def _batched(self, z: torch.Tensor, control: torch.Tensor | None) -> torch.Tensor:
        """Stream batch: one UNet call denoises the new frame at t0 and the frames in flight at t1.."""
        a, b, noise = self._a, self._b, self._noise
        assert self._buffer is not None and self._buffer_ref is not None
        x = torch.cat([a[0] * z + b[0] * noise[0:1], self._buffer])
        refs = torch.cat([z, self._buffer_ref])
        denoised = self._denoise(x, slice(0, self.steps), refs, control)
        self._buffer.copy_(a[1:] * denoised[:-1] + b[1:] * noise[1:])
        self._buffer_ref.copy_(refs[:-1])
        return denoised[-1:]

    def _denoise(self, x: torch.Tensor, steps: slice, x0_ref: torch.Tensor, control: torch.Tensor | None) -> torch.Tensor:
        """One consistency step for a batch of latents, each at its own timestep (see module doc)."""
        assert self._embeds is not None
        a, b = self._a[steps], self._b[steps]
        t = self._timesteps[steps]
        n = x.shape[0]
        embeds = self._embeds.expand(n, -1, -1)
        added = {k: v.expand(n, -1) for k, v in self._added.items()}
        if self.cfg_type == "full":
            assert self._neg_embeds is not None
            model_in = torch.cat([x, x])
            t_in = torch.cat([t, t])
            embeds = torch.cat([self._neg_embeds.expand(n, -1, -1), embeds])
            added = {k: torch.cat([self._neg_added[k].expand(n, -1), v]) for k, v in added.items()}
        else:
            model_in, t_in = x, t
        out = self._model(model_in, t_in, embeds, added, control, uncond_first=self.cfg_type == "full")
        if self.cfg_type == "full":
            eps_u, eps_c = self._to_eps(out[:n], x, a, b), self._to_eps(out[n:], x, a, b)
            eps = eps_u + self._guidance * (eps_c - eps_u)
        else:
            eps = self._to_eps(out, x, a, b)
            if self.cfg_type == "self":
                residual = (x - a * x0_ref) / b
                eps = self._delta * residual + self._guidance * (eps - self._delta * residual)
        x0 = (x - b * eps) / a
        return self._c_out[steps] * x0 + self._c_skip[steps] * x

    def _to_eps(self, out: torch.Tensor, x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.prediction_type == "v_prediction":
            return b * x + a * out
        return out

    def _model(self, x: torch.Tensor, t: torch.Tensor, embeds: torch.Tensor, added: dict[str, torch.Tensor],
               control: torch.Tensor | None, uncond_first: bool) -> torch.Tensor:
        n = x.shape[0]
        down = mid = None
        # Accelerated, the ControlNet always runs (scale 0 multiplies its residuals by 0): one graph
        # whatever the scale. Eager, scale 0 skips it (the same result, less work).
        run_cn = (self.controlnet is not None and control is not None
                  and (self.acceleration != "none" or self._control_scale > 0.0))
        if run_cn:
            with self._timed("controlnet"):
                down, mid = (self._controlnet_fn or self.controlnet)(
                    x, t, encoder_hidden_states=embeds, controlnet_cond=control.expand(n, -1, -1, -1),  # type: ignore[union-attr]
                    conditioning_scale=self._cn_scale, added_cond_kwargs=added or None, return_dict=False,
                )
        unet_added = dict(added)
        if self.has_ip_adapter:
            ip = self._ip_embeds.expand(n, -1, -1)
            if uncond_first:  # no identity for the unconditional half of full CFG
                ip = torch.cat([torch.zeros_like(ip[: n // 2]), ip[n // 2:]])
            unet_added["image_embeds"] = [ip]
        with self._timed("unet"):
            return (self._unet_fn or self.unet)(x, t, encoder_hidden_states=embeds, down_block_additional_residuals=down,
                             mid_block_additional_residual=mid, added_cond_kwargs=unet_added or None, return_dict=False)[0]

    def _encode(self, image: torch.Tensor) -> torch.Tensor:
        if self.vae_upcast:
            image = image.float()
        if self.tiny_vae:
            latents = (self._encode_fn or self.vae.encode)(image).latents
        else:
            latents = (self._encode_fn or self.vae.encode)(image).latent_dist.mode()
        return (latents * self.vae_scale).to(self.dtype)

    def _decode(self, latent: torch.Tensor) -> torch.Tensor:
        latent = latent / self.vae_scale
        if self.vae_upcast:
            latent = latent.float()
        image = (self._decode_fn or self.vae.decode)(latent).sample
        return image.permute(0, 2, 3, 1).float().mul(0.5).add_(0.5).clamp_(0.0, 1.0).contiguous()

    # ----------------------------------------------------------------- profiling
    def _timed(self, part: str) -> Any:
        if not self.profile or self._graph is not None or self.acceleration != "none":
            return _NULL
        return _Timer(self, part)

    @property
    def timings(self) -> dict[str, float]:
        """ms of the last frame per part (when ``profile``): encode, controlnet, unet, decode (eager only)
        and frame (all of it, eager or graph).

        On CUDA the parts are timed with CUDA events recorded on the engine's stream (no sync
        between parts); reading this waits for the last event. Elsewhere, wall-clock ms.
        """
        if not self._events:
            return dict(self._cpu_ms)
        self._events[-1][2].synchronize()
        ms = dict.fromkeys(PARTS, 0.0)
        for part, start, end in self._events:
            ms[part] += start.elapsed_time(end)
        return ms


PARTS = ("encode", "controlnet", "unet", "decode", "frame")
_NULL = contextlib.nullcontext()


def _assign(current: torch.Tensor | None, new: torch.Tensor | None) -> torch.Tensor | None:
    """Copy ``new`` into ``current`` when shapes match (a graph input keeps its storage), else ``new``."""
    if new is None:
        return None
    if current is None or current.shape != new.shape or current.dtype != new.dtype:
        return new.clone()  # never alias a caller's tensor (the prompt cache) that we later write into
    current.copy_(new)
    return current


def _filter_view(frame: torch.Tensor, side: int = 96) -> torch.Tensor:
    """A strided sample of a host frame (1, h, w, C), at most ``side`` px a side, RGB in [-1, 1]: what the
    similarity filter compares (cheap on the CPU, so skipped frames are never uploaded)."""
    h, w = frame.shape[1:3]
    sy, sx = max(1, h // side), max(1, w // side)
    return frame[0, ::sy, ::sx, :3].float().mul_(2.0 / 255.0).sub_(1.0)


class _Timer:
    """Adds the ms of a block to the engine's timings: CUDA events on its stream, or wall clock off CUDA."""

    __slots__ = ("engine", "part", "t0", "start")

    def __init__(self, engine: StreamEngine, part: str) -> None:
        self.engine, self.part, self.t0, self.start = engine, part, 0.0, None

    def __enter__(self) -> None:
        if self.engine.cuda:
            self.start = torch.cuda.Event(enable_timing=True)
            self.start.record(self.engine.stream)
        else:
            self.t0 = time.perf_counter()

    def __exit__(self, *exc: Any) -> None:
        if self.engine.cuda:
            end = torch.cuda.Event(enable_timing=True)
            end.record(self.engine.stream)
            self.engine._events.append((self.part, self.start, end))
        else:
            self.engine._cpu_ms[self.part] += (time.perf_counter() - self.t0) * 1000.0


def params_from(values: dict[str, Any]) -> StreamParams:
    """A :class:`StreamParams` from a dict that may hold other keys (stage kwargs)."""
    names = StreamParams.__dataclass_fields__
    return replace(StreamParams(), **{k: v for k, v in values.items() if k in names})
