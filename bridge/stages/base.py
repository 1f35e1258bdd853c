"""The stage contract: our own mirror of Daydream Scope's pipeline interface.

Scope (github.com/daydreamlive/scope, v0.2.4) is not on PyPI and its licence is
non-commercial, so avatar-bridge does not import it. This module copies the *shape*
of its contract (seeds 001 and 003 in ``shared/seeds``) so that every stage can be
registered in Scope unchanged by a thin plugin layer:

* a pydantic config class (``BasePipelineConfig``, extra fields forbidden) with
  class-level metadata (``pipeline_id``, ``pipeline_name``, ``pipeline_description``,
  ``usage``, ``modes``, ``supports_prompts``) and one field per parameter, whose
  ``json_schema_extra`` comes from :func:`ui_field_config` (order, label,
  ``is_load_param``, ...);
* a stage class (``Pipeline``) with ``get_config_class()``, ``__init__(device,
  **load_params)``, ``prepare(**kwargs) -> Requirements`` and ``__call__(**kwargs)``.

Runtime parameters are read from ``kwargs`` on every call and never cached on
``self``; load-time parameters (``is_load_param=True``) go to ``__init__``.

Tensor formats (Scope's, seed 001 section 4):

* input ``video``: list of N tensors, each (1, H, W, C), values in [0, 255]
  (uint8 or float32), N = ``prepare().input_size``;
* output ``{"video": (T, H, W, C) float32 in [0, 1]}``, and a stage that makes a matte
  also returns ``"alpha": (T, H, W, 1) float32 in [0, 1]``.

The daemon's uint8 path (ours, not Scope's): the chain (:mod:`bridge.chain`) passes
``keep_uint8=True`` to every call. A stage that does not change pixels (passthrough,
a stage that only adds alpha) may then return ``video`` as uint8 (T, H, W, C) in
[0, 255] when its input is uint8, and the chain hands it to the next stage as it is
(no x255 / /255 round trip); a 4-channel uint8 ``video`` is a finished RGBA frame
(straight or premultiplied, as the stage was told) that goes to the sink as it is, and
``alpha`` may be uint8 (T, H, W, 1) too. Without ``keep_uint8`` (Scope, the plugin)
stages return float32 in [0, 1] as above. Outputs belong to the caller: a stage never
writes again into a tensor it has returned (return a new tensor per call, or the input
itself), because frames are still in flight on other threads (the engine's assembly line).

Concurrency: the engine runs each stage on its own worker thread, one frame after the
other and in order. A config may set ``max_workers > 1`` to let several frames through
the stage at once (same instance, several threads), only for a stage with no state
from frame to frame whose ``__call__`` is safe to call from several threads. Every other
stage gets a per-instance lock around ``__call__`` and ``reset`` (:class:`Pipeline` adds
it to each subclass), because hosts do call one instance from several threads: Scope
after a failed session stop while the next session starts (issue #19), the daemon's
preset switch while frames of the old chain are in flight. A LiteRT interpreter or a
temporal state shared by two calls at once corrupts both.
"""

from __future__ import annotations

import enum
import functools
import threading
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch
from pydantic import BaseModel, ConfigDict


class UsageType(str, enum.Enum):
    """Where a stage sits in the chain (Scope: input -> pre -> main -> post -> output)."""

    PREPROCESSOR = "preprocessor"
    MAIN = "main"
    POSTPROCESSOR = "postprocessor"


@dataclass(frozen=True)
class Requirements:
    """What a stage needs per call. ``input_size``: number of input frames (>= 1)."""

    input_size: int = 1


@dataclass(frozen=True)
class ModeDefaults:
    """Per-mode defaults, as Scope's ``ModeDefaults`` (``default`` marks the default mode)."""

    default: bool = False


def ui_field_config(
    order: int | None = None,
    component: str | None = None,
    modes: list[str] | None = None,
    is_load_param: bool = False,
    label: str | None = None,
    category: str | None = None,
) -> dict[str, Any]:
    """UI metadata for ``Field(json_schema_extra=...)``, shaped like Scope's helper.

    Returns ``{"ui": {...}}`` holding only the keys that were given (plus
    ``is_load_param``), exactly what Scope's ``ui_field_config`` produces.
    """
    ui: dict[str, Any] = {"is_load_param": bool(is_load_param)}
    for key, value in (
        ("order", order),
        ("component", component),
        ("modes", modes),
        ("label", label),
        ("category", category),
    ):
        if value is not None:
            ui[key] = value
    return {"ui": ui}


class BasePipelineConfig(BaseModel):
    """Base of every stage config. Fields are parameters; class variables are metadata.

    Extra fields are forbidden (as in Scope), so a preset or an OSC message naming an
    unknown parameter is refused with the field's name.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    pipeline_id: ClassVar[str] = ""
    pipeline_name: ClassVar[str] = ""
    pipeline_description: ClassVar[str] = ""
    usage: ClassVar[list[UsageType]] = []
    modes: ClassVar[dict[str, ModeDefaults]] = {"video": ModeDefaults(default=True)}
    supports_prompts: ClassVar[bool] = False
    #: Short name used in OSC addresses and presets: ``/bridge/<osc_name>/<param>``.
    osc_name: ClassVar[str] = ""
    #: When True, a failure to load this stage (e.g. a missing model) does not stop the
    #: chain: the stage is bypassed with the error reported, and a reload can bring it
    #: back (see :meth:`bridge.chain.Chain.from_spec`).
    bypass_on_load_error: ClassVar[bool] = False
    #: How many frames the engine may run through this stage at the same time, on one
    #: instance from several worker threads. 1 (the default, always safe): one worker,
    #: frames in order, as a stage with temporal state (smoothing, tracking, stream
    #: batch) or reused buffers needs. More only for a stage that is stateless per frame
    #: and whose ``__call__`` is thread-safe (e.g. an inference runtime that releases the
    #: GIL with a per-call interpreter). Frames leave the stage in order either way.
    max_workers: ClassVar[int] = 1

    @classmethod
    def is_load_param(cls, name: str) -> bool:
        """True when field ``name`` is load-time (``ui_field_config(is_load_param=True)``)."""
        extra = cls.model_fields[name].json_schema_extra
        return bool(isinstance(extra, dict) and extra.get("ui", {}).get("is_load_param"))

    @classmethod
    def runtime_fields(cls) -> list[str]:
        """Names of runtime parameters (read from kwargs on every call), in UI order."""
        return [n for n in _ordered(cls) if not cls.is_load_param(n)]

    @classmethod
    def load_fields(cls) -> list[str]:
        """Names of load-time parameters (passed to ``__init__``), in UI order."""
        return [n for n in _ordered(cls) if cls.is_load_param(n)]

    def runtime_params(self) -> dict[str, Any]:
        """This config's runtime parameter values, as kwargs for ``__call__``."""
        return {n: getattr(self, n) for n in self.runtime_fields()}

    def load_params(self) -> dict[str, Any]:
        """This config's load-time parameter values, as kwargs for ``__init__``."""
        return {n: getattr(self, n) for n in self.load_fields()}


def _ordered(cls: type[BasePipelineConfig]) -> list[str]:
    def key(item: tuple[int, str]) -> tuple[int, int]:
        index, name = item
        extra = cls.model_fields[name].json_schema_extra
        order = extra.get("ui", {}).get("order") if isinstance(extra, dict) else None
        return (order if order is not None else 10_000, index)

    return [name for _, name in sorted(enumerate(cls.model_fields), key=key)]


class Pipeline:
    """Base class of a stage (Scope calls it ``Pipeline``, an alias of its ``Node``).

    Subclasses set ``get_config_class()``, read load-time parameters in ``__init__``
    and runtime parameters from ``kwargs`` in ``__call__``.

    Thread safety: a host may call one instance from several threads (Scope does when a
    session stops and the next starts on the same server; the daemon's preset switch keeps
    an instance while frames of the old chain are still in flight), but the stages keep
    state (temporal smoothing, trackers) and their LiteRT interpreters run one call at a
    time. So ``__call__``, ``prepare`` and ``reset`` of every subclass run under one lock
    per instance (:func:`_serialised`); a stage whose config declares ``max_workers > 1``
    promises to be thread-safe itself and is not locked.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in ("__call__", "prepare", "reset"):
            method = cls.__dict__.get(name)
            if method is not None and not getattr(method, "_serialised", False):
                setattr(cls, name, _serialised(method))

    @classmethod
    def get_config_class(cls) -> type[BasePipelineConfig]:
        """The stage's config class (parameters and metadata)."""
        raise NotImplementedError(f"{cls.__name__} must define get_config_class()")

    def __init__(self, device: torch.device | str | None = None, **kwargs: Any) -> None:
        self.device = torch.device(device) if device is not None else torch.device("cpu")

    def prepare(self, **kwargs: Any) -> Requirements:
        """How many input frames one call needs. Default: one."""
        return Requirements(input_size=1)

    def __call__(self, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Process ``kwargs["video"]`` (list of (1,H,W,C) in [0,255]) -> ``{"video": THWC [0,1]}``."""
        raise NotImplementedError

    def reset(self) -> None:
        """Forget temporal state (a new stream or a source that restarted). Default: none."""


_LOCK_GUARD = threading.Lock()


def instance_lock(obj: Any) -> threading.RLock:
    """A re-entrant lock of ``obj``'s own, made on first use (``dict.setdefault`` is atomic, so
    two threads asking at once get the same lock): for a host wrapper (the Scope adapter)
    whose steps around a stage call belong together."""
    lock = obj.__dict__.get("_host_lock")
    return lock if lock is not None else obj.__dict__.setdefault("_host_lock", threading.RLock())


def _serialised(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` run under its instance's own re-entrant lock (made on first use), unless the
    stage's config declares ``max_workers > 1`` (see :class:`Pipeline`)."""

    @functools.wraps(method)
    def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
        lock = self.__dict__.get("_call_lock")
        if lock is None:
            try:
                parallel = int(getattr(self.get_config_class(), "max_workers", 1)) > 1
            except (NotImplementedError, TypeError, AttributeError):
                parallel = False
            with _LOCK_GUARD:
                lock = self.__dict__.setdefault("_call_lock", False if parallel else threading.RLock())
        if lock is False:
            return method(self, *args, **kwargs)
        with lock:
            return method(self, *args, **kwargs)

    locked._serialised = True  # type: ignore[attr-defined]
    return locked


def stack_video(video: list[torch.Tensor] | None, device: torch.device | None = None) -> torch.Tensor:
    """Stack Scope-style input frames into one THWC float32 tensor in [0, 1].

    Args:
        video: list of (1, H, W, C) tensors in [0, 255] (uint8 or float).
        device: where the result lives (default: where the frames are).

    Raises:
        ValueError: ``video`` is missing, empty, or not (1, H, W, C).
    """
    _check_video(video)
    frames = video[0] if len(video) == 1 else torch.cat(list(video), dim=0)
    frames = frames.to(device=device or frames.device, dtype=torch.float32)
    return frames.mul_(1.0 / 255.0) if frames.data_ptr() != video[0].data_ptr() else frames / 255.0


def uint8_video(video: list[torch.Tensor] | None, keep_uint8: bool) -> torch.Tensor | None:
    """Input frames as one (T, H, W, C) uint8 tensor in [0, 255], for a stage that passes
    pixels on unchanged, or None when the float contract applies.

    Args:
        video: list of (1, H, W, C) tensors, as a stage gets them.
        keep_uint8: the caller's ``keep_uint8`` kwarg (the daemon's chain sets it).

    Returns:
        None unless ``keep_uint8`` and every frame is uint8 (then the stage returns
        ``stack_video(...)``, float32 in [0, 1]); the frame itself (no copy) for one frame.

    Raises:
        ValueError: ``video`` is missing, empty, or not (1, H, W, C) (as :func:`stack_video`).
    """
    _check_video(video)
    assert video is not None
    if not keep_uint8 or not all(frame.dtype == torch.uint8 for frame in video):
        return None
    return video[0] if len(video) == 1 else torch.cat(list(video), dim=0)


def _check_video(video: list[torch.Tensor] | None) -> None:
    if not video:
        raise ValueError("stage needs video input: kwargs['video'] = list of (1,H,W,C) frames")
    for frame in video:
        if frame.ndim != 4 or frame.shape[0] != 1:
            raise ValueError(f"each video frame must be (1,H,W,C); got {tuple(frame.shape)}")
