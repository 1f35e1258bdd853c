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

On CUDA the engine can run fp16/bf16, channels-last, ``torch.compile`` and CUDA graphs
(``torch.compile(mode="reduce-overhead")``); on other devices those are skipped.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import torch
import torch.nn.functional as F

log = logging.getLogger("bridge.avatar.stream")

#: The timestep grid ``t_index_list`` indexes (StreamDiffusion's num_inference_steps).
TIMESTEP_GRID = 50
CFG_TYPES = ("none", "self", "full")


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
        set_ip_adapter_scale: optional callback setting the IP-Adapter scale in the UNet.
        width, height: output size in pixels (multiples of 8; the UNet may need 64).
        steps: number of denoising steps (len of ``t_index_list``), 1-4.
        stream_batch: batch the steps of consecutive frames (latency ``steps - 1`` frames).
        cfg_type: ``none`` | ``self`` | ``full``.
        device, dtype: where and how the models run.
        acceleration: ``none`` | ``compile`` | ``cuda-graphs`` (CUDA only).
        channels_last: channels-last memory format (CUDA only).
        sdxl: add SDXL's pooled text embedding and time ids.

    Call :meth:`update` with :class:`StreamParams` (cheap when nothing changed), then
    :meth:`prepare` / :meth:`process` or just ``engine(frame, control)``.
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
        acceleration: str = "none",
        channels_last: bool = True,
        sdxl: bool = False,
    ) -> None:
        from diffusers.schedulers import LCMScheduler

        if cfg_type not in CFG_TYPES:
            raise ValueError(f"cfg_type must be one of {CFG_TYPES}, got {cfg_type!r}")
        if not 1 <= steps <= 4:
            raise ValueError(f"steps must be 1-4, got {steps}")
        self.device = torch.device(device)
        self.dtype = dtype
        self.width, self.height, self.steps = int(width), int(height), int(steps)
        self.stream_batch, self.cfg_type, self.sdxl = bool(stream_batch), cfg_type, bool(sdxl)
        self.unet, self.vae, self.controlnet = unet, vae, controlnet
        self.tiny_vae = type(vae).__name__ == "AutoencoderTiny"
        self.vae_scale = float(getattr(vae.config, "scaling_factor", 1.0))
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
        #: ms of the last call per part: encode, controlnet, unet, decode (when ``profile``).
        self.timings: dict[str, float] = {"encode": 0.0, "controlnet": 0.0, "unet": 0.0, "decode": 0.0}
        self.skipped = False
        self._params: StreamParams | None = None
        self._embeds: torch.Tensor | None = None
        self._neg_embeds: torch.Tensor | None = None
        self._added: dict[str, torch.Tensor] = {}
        self._neg_added: dict[str, torch.Tensor] = {}
        self._ip_embeds: torch.Tensor | None = None
        self._ip_scale_applied: float | None = None
        self._buffer: torch.Tensor | None = None
        self._buffer_ref: torch.Tensor | None = None
        self._last_output: torch.Tensor | None = None
        self._control_scale = 1.0
        self._t_indices: list[int] = []
        self._setup_acceleration(acceleration, channels_last)
        if self.sdxl:
            self._time_ids = torch.tensor([[self.height, self.width, 0, 0, self.height, self.width]], device=self.device, dtype=dtype)
        self.has_ip_adapter = encode_images is not None
        if self.has_ip_adapter:
            dim = self._image_embed_dim()
            self._zero_ip = torch.zeros(1, 1, dim, device=self.device, dtype=dtype)
        self.update(StreamParams())

    # ----------------------------------------------------------------- setup
    def _setup_acceleration(self, acceleration: str, channels_last: bool) -> None:
        cuda = self.device.type == "cuda"
        if not cuda:
            if acceleration != "none":
                log.warning("avatar: acceleration %r needs CUDA; running without it on %s", acceleration, self.device)
            return
        if channels_last:
            for model in (self.unet, self.controlnet, self.vae):
                if model is not None:
                    model.to(memory_format=torch.channels_last)
        if acceleration in ("compile", "cuda-graphs"):
            mode = "reduce-overhead" if acceleration == "cuda-graphs" else "max-autotune-no-cudagraphs"
            self.unet = torch.compile(self.unet, mode=mode, fullgraph=False)
            if self.controlnet is not None:
                self.controlnet = torch.compile(self.controlnet, mode=mode, fullgraph=False)

    def _image_embed_dim(self) -> int:
        proj = getattr(self.unet, "encoder_hid_proj", None)
        layer = proj.image_projection_layers[0] if proj is not None else None
        return int(layer.image_embeds.in_features) if layer is not None else 1024

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
        self._buffer = self._buffer_ref = self._last_output = None
        self.filter.reset(self._params.seed if self._params else 0)

    # ----------------------------------------------------------------- parameters
    def update(self, params: StreamParams, reference_images: list[Any] | None = None) -> None:
        """Apply runtime parameters; only what changed is recomputed.

        Args:
            params: the new parameters.
            reference_images: new IP-Adapter reference images ((H, W, 3) uint8 RGB), or
                None to keep the current ones; ``[]`` clears them.

        Raises:
            ValueError: a strength too low for the number of steps.
        """
        old = self._params
        changed = (lambda *names: old is None or any(getattr(old, n) != getattr(params, n) for n in names))
        if changed("strength"):
            indices = t_index_list(params.strength, self.steps)
            if indices != self._t_indices:
                self._set_timesteps(indices)
        if changed("prompt", "prompt_b", "prompt_blend"):
            self._embeds, pooled = self._blend_prompts(params)
            self._added = {"text_embeds": pooled, "time_ids": self._time_ids} if self.sdxl else {}
        if self.cfg_type == "full" and changed("negative_prompt"):
            neg, pooled = self._prompts.get(params.negative_prompt)
            self._neg_embeds = neg.to(self.device, self.dtype)
            self._neg_added = {"text_embeds": pooled.to(self.device, self.dtype), "time_ids": self._time_ids} if self.sdxl else {}
        if changed("seed", "seed_b", "seed_blend"):
            self._noise = self._make_noise(params)
            self.filter.reset(params.seed)
        if reference_images is not None and self.has_ip_adapter:
            if reference_images:
                with torch.no_grad():
                    emb = self._encode_images(reference_images)  # type: ignore[misc]
                self._ip_embeds = emb.to(self.device, self.dtype).reshape(1, len(reference_images), -1)
            else:
                self._ip_embeds = None
        if self.has_ip_adapter:
            scale = float(params.ip_adapter_scale) if self._ip_embeds is not None else 0.0
            if scale != self._ip_scale_applied and self._set_ip_scale is not None:
                self._set_ip_scale(scale)
                self._ip_scale_applied = scale
        self._control_scale = float(params.controlnet_conditioning_scale)
        self._params = params

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
        self._timesteps = torch.tensor(ts, device=self.device, dtype=torch.long)
        self._a = col(abar.sqrt())
        self._b = col((1.0 - abar).sqrt())
        self._c_skip = col([float(s[0]) for s in scalings])
        self._c_out = col([float(s[1]) for s in scalings])
        self._buffer = self._buffer_ref = None  # frames in flight were at the old timesteps

    # ----------------------------------------------------------------- per frame
    def prepare(self, frame: torch.Tensor, fit: str = "crop") -> torch.Tensor:
        """(1, h, w, 3) in [0, 255] -> (1, 3, H, W) in [-1, 1] on the device (a new tensor).

        ``fit="crop"`` crops the centre to the output aspect ratio first; ``"stretch"`` does not.
        """
        x = self._resize(frame, fit)
        return x.mul_(2.0 / 255.0).sub_(1.0).to(self.dtype)

    def prepare_control(self, control: torch.Tensor | None, fit: str = "crop") -> torch.Tensor | None:
        """(1, h, w, 3) float in [0, 1] -> (1, 3, H, W) in [0, 1] on the device, or None."""
        if control is None or self.controlnet is None:
            return None
        return self._resize(control, fit).to(self.dtype)

    def _resize(self, frame: torch.Tensor, fit: str) -> torch.Tensor:
        x = frame.to(self.device, non_blocking=True).permute(0, 3, 1, 2)[:, :3].float()
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
        else:
            x = x.clone()
        return x

    def __call__(self, frame: torch.Tensor, control: torch.Tensor | None = None, fit: str = "crop") -> torch.Tensor:
        """One frame in, one frame out: (1, h, w, 3) [0,255] (+ control (1, h, w, 3) [0,1]) -> (1, H, W, 3) float32 [0,1]."""
        return self.process(self.prepare(frame, fit), self.prepare_control(control, fit))

    def process(self, image: torch.Tensor, control: torch.Tensor | None = None) -> torch.Tensor:
        """Prepared image (1, 3, H, W) in [-1, 1] and control (1, 3, H, W) in [0, 1] or None
        -> output (1, H, W, 3) float32 in [0, 1] on the device: a new tensor for each processed
        frame, the previous output again for a frame the similarity filter skips (``skipped``)."""
        p = self._params
        assert p is not None
        for key in self.timings:
            self.timings[key] = 0.0
        with torch.no_grad():  # (not inference_mode: the output is a normal tensor later stages may modify)
            self.skipped = bool(p.similarity_filter and self.filter.skip(image, p.similarity_threshold, p.similarity_max_skip)
                                and self._last_output is not None)
            if self.skipped:
                return self._last_output  # type: ignore[return-value]
            with self._timed("encode"):
                z = self._encode(image)
            if self.steps == 1 or not self.stream_batch or self._buffer is None:
                latent = self._sequential(z, control)
            else:
                latent = self._batched(z, control)
            with self._timed("decode"):
                out = self._decode(latent)
        self._last_output = out
        return out

    def _sequential(self, z: torch.Tensor, control: torch.Tensor | None) -> torch.Tensor:
        """All steps of one frame in turn; with stream batch, also fills the frames in flight."""
        a, b, noise = self._a, self._b, self._noise
        x = a[0] * z + b[0] * noise[0:1]
        in_flight = []
        denoised = x
        for i in range(self.steps):
            denoised = self._denoise(x, slice(i, i + 1), z, control)
            if i + 1 < self.steps:
                x = a[i + 1] * denoised + b[i + 1] * noise[i + 1:i + 2]
                in_flight.append(x)
        if self.stream_batch and self.steps > 1:
            # as if this frame had also been the previous steps-1 frames (a still start)
            self._buffer = torch.cat(in_flight)
            self._buffer_ref = z.expand(self.steps - 1, -1, -1, -1).clone()
        return denoised

    def _batched(self, z: torch.Tensor, control: torch.Tensor | None) -> torch.Tensor:
        """Stream batch: one UNet call denoises the new frame at t0 and the frames in flight at t1.."""
        a, b, noise = self._a, self._b, self._noise
        assert self._buffer is not None and self._buffer_ref is not None
        x = torch.cat([a[0] * z + b[0] * noise[0:1], self._buffer])
        refs = torch.cat([z, self._buffer_ref])
        denoised = self._denoise(x, slice(0, self.steps), refs, control)
        self._buffer = a[1:] * denoised[:-1] + b[1:] * noise[1:]
        self._buffer_ref = refs[:-1]
        return denoised[-1:]

    def _denoise(self, x: torch.Tensor, steps: slice, x0_ref: torch.Tensor, control: torch.Tensor | None) -> torch.Tensor:
        """One consistency step for a batch of latents, each at its own timestep (see module doc)."""
        p = self._params
        assert p is not None and self._embeds is not None
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
            eps = eps_u + p.guidance_scale * (eps_c - eps_u)
        else:
            eps = self._to_eps(out, x, a, b)
            if self.cfg_type == "self":
                residual = (x - a * x0_ref) / b
                eps = p.delta * residual + p.guidance_scale * (eps - p.delta * residual)
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
        if self.controlnet is not None and control is not None and self._control_scale > 0.0:
            with self._timed("controlnet"):
                down, mid = self.controlnet(
                    x, t, encoder_hidden_states=embeds, controlnet_cond=control.expand(n, -1, -1, -1),
                    conditioning_scale=self._control_scale, added_cond_kwargs=added or None, return_dict=False,
                )
        unet_added = dict(added)
        if self.has_ip_adapter:
            ip = self._ip_embeds if self._ip_embeds is not None else self._zero_ip
            ip = ip.expand(n, -1, -1)
            if uncond_first:  # no identity for the unconditional half of full CFG
                ip = torch.cat([torch.zeros_like(ip[: n // 2]), ip[n // 2:]])
            unet_added["image_embeds"] = [ip]
        with self._timed("unet"):
            return self.unet(x, t, encoder_hidden_states=embeds, down_block_additional_residuals=down,
                             mid_block_additional_residual=mid, added_cond_kwargs=unet_added or None, return_dict=False)[0]

    def _encode(self, image: torch.Tensor) -> torch.Tensor:
        if self.tiny_vae:
            latents = self.vae.encode(image).latents
        else:
            latents = self.vae.encode(image).latent_dist.mode()
        return latents * self.vae_scale

    def _decode(self, latent: torch.Tensor) -> torch.Tensor:
        image = self.vae.decode(latent / self.vae_scale).sample
        return image.float().permute(0, 2, 3, 1).mul_(0.5).add_(0.5).clamp_(0.0, 1.0)

    def _timed(self, part: str) -> "_Timer":
        return _Timer(self, part)


class _Timer:
    """Adds the elapsed ms of a block to ``engine.timings[part]`` when ``engine.profile`` is on."""

    __slots__ = ("engine", "part", "t0")

    def __init__(self, engine: StreamEngine, part: str) -> None:
        self.engine, self.part, self.t0 = engine, part, 0.0

    def __enter__(self) -> None:
        if self.engine.profile:
            if self.engine.device.type == "cuda":
                torch.cuda.synchronize(self.engine.device)
            self.t0 = time.perf_counter()

    def __exit__(self, *exc: Any) -> None:
        if self.engine.profile:
            if self.engine.device.type == "cuda":
                torch.cuda.synchronize(self.engine.device)
            self.engine.timings[self.part] += (time.perf_counter() - self.t0) * 1000.0


def params_from(values: dict[str, Any]) -> StreamParams:
    """A :class:`StreamParams` from a dict that may hold other keys (stage kwargs)."""
    names = StreamParams.__dataclass_fields__
    return replace(StreamParams(), **{k: v for k, v in values.items() if k in names})
