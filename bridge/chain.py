"""The stage chain: stages in order, their live parameters, bypass and background reloads.

A :class:`Chain` turns one source frame ((H, W, 3) uint8 RGB) into one RGBA frame
((H, W, 4) uint8). Runtime parameters set from another thread (OSC) are validated at
once against the stage's config, queued (many sets of one parameter coalesce, last
wins) and applied at the start of the stage's next frame. Load-time parameters rebuild
the stage in a background thread while frames keep flowing through the old one; the new
stage is swapped in at a frame boundary, and if building it fails the old stage and
its parameters stay (Livepeer's StreamDiffusion runner does the same; platform.md).

One frame's way through the chain is a :class:`Job`: :meth:`Chain.begin` (bypass is
decided here, once per frame), :meth:`Chain.run_stage` for each stage in turn,
:meth:`Chain.finish` (the RGBA frame) and :meth:`Chain.account` (in frame order: the
``recovered`` event). :meth:`Chain.process` does all of it on the calling thread; the
engine's assembly line (:mod:`bridge.engine`) runs each stage's ``run_stage`` on that
stage's own worker, so different stages work on different frames at the same time. A
stage's queued changes are applied by the thread that runs it, between two of its
frames. A failed stage marks the job: later stages skip it and it goes out as the input
with opaque alpha.

Pixels stay uint8 where no stage changes them: every stage is called with
``keep_uint8=True``, a uint8 output is handed to the next stage as it is, and a uint8
RGBA output goes to the sink as it is (see :mod:`bridge.stages.base`); float32 [0, 1]
outputs (a stage that computes in float, e.g. the avatar) are scaled to [0, 255] for
the next stage and rounded once at the end, as before.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import cv2
import numpy as np
import torch
from pydantic import ValidationError

from bridge.errors import BridgeError, ConfigError
from bridge.frames import Frame, compose_rgba
from bridge.stages.base import BasePipelineConfig, Pipeline, Requirements, UsageType, stack_video, uint8_video
from bridge.stages.registry import get_stage

log = logging.getLogger("bridge.chain")


def validation_message(exc: ValidationError) -> str:
    """One line from a pydantic error: ``field: reason`` for each problem."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ())) or "value"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def validate_params(config_cls: type[BasePipelineConfig], params: dict[str, Any], base: BasePipelineConfig | None = None) -> BasePipelineConfig:
    """A config of ``config_cls`` from ``base`` (or defaults) updated with ``params``.

    Raises:
        ConfigError: an unknown field, a wrong type or a value out of range; the message
            names the field.
    """
    data = base.model_dump() if base is not None else {}
    data.update(params)
    try:
        return config_cls.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{config_cls.osc_name or config_cls.pipeline_id}: {validation_message(exc)}") from None


@dataclass
class StageSlot:
    """One stage in the chain: its name (OSC name), instance and current config."""

    name: str
    stage: Pipeline
    config: BasePipelineConfig
    runtime: dict[str, Any] = field(default_factory=dict)
    history: collections.deque = field(default_factory=lambda: collections.deque(maxlen=1))

    def __post_init__(self) -> None:
        self.runtime = self.config.runtime_params()
        size = max(1, int(self.stage.prepare(**self.runtime).input_size))
        self.history = collections.deque(maxlen=size)


def build_stage(config: BasePipelineConfig, stage_cls: type[Pipeline], device: str | torch.device | None) -> Pipeline:
    """Construct ``stage_cls`` with the load-time parameters of ``config``.

    Raises:
        BridgeError: (e.g. ModelMissingError) when the stage cannot load; other
            exceptions are wrapped in a BridgeError naming the stage.
    """
    try:
        return stage_cls(device=device, **config.load_params())
    except BridgeError:
        raise
    except Exception as exc:
        raise BridgeError(f"stage {config.pipeline_id!r} failed to load: {exc}") from exc


class UnloadedStage(Pipeline):
    """Stands in for a stage that failed to load (config ``bypass_on_load_error``).

    Frames pass through: a main stage is replaced by the source frame (so a missing
    avatar model leaves the camera image for the alpha stage), any other stage passes
    its input on. ``stage_cls`` and ``error`` say what failed; a reload builds
    ``stage_cls`` again.
    """

    def __init__(self, stage_cls: type[Pipeline], error: str, device: str | torch.device | None = None) -> None:
        super().__init__(device)
        self.stage_cls = stage_cls
        self.error = error
        self.get_config_class = stage_cls.get_config_class  # type: ignore[method-assign]
        self._main = UsageType.MAIN in stage_cls.get_config_class().usage

    def prepare(self, **kwargs: Any) -> Requirements:
        return Requirements(input_size=1)

    def __call__(self, **kwargs: Any) -> dict[str, torch.Tensor]:
        video = kwargs.get("source_video") if self._main and kwargs.get("source_video") else kwargs.get("video")
        video = video[-1:] if video else video
        kept = uint8_video(video, kwargs.get("keep_uint8", False))
        return {"video": kept if kept is not None else stack_video(video)}


def build_or_bypass(config: BasePipelineConfig, stage_cls: type[Pipeline], device: str | torch.device | None) -> tuple[Pipeline, str | None]:
    """:func:`build_stage`, except that a stage whose config sets ``bypass_on_load_error``
    and fails to load becomes an :class:`UnloadedStage`; returns (stage, error line or None).

    Raises:
        BridgeError: the stage failed to load and may not be bypassed.
    """
    try:
        return build_stage(config, stage_cls, device), None
    except BridgeError as exc:
        if not type(config).bypass_on_load_error:
            raise
        error = f"{config.osc_name or config.pipeline_id} bypassed, the other stages keep streaming: {exc}"
        log.error(error)
        return UnloadedStage(stage_cls, str(exc), device), error


def stage_class(stage: Pipeline) -> type[Pipeline]:
    """The class a slot's stage is (or would be, for an :class:`UnloadedStage`)."""
    return stage.stage_cls if isinstance(stage, UnloadedStage) else type(stage)


class Chain:
    """Stages in order, with live parameter updates, bypass and background reloads.

    Thread model: :meth:`process` runs on one thread at a time; on the engine's assembly
    line :meth:`run_stage` for stage i runs only on stage i's worker(s), :meth:`finish`
    on the last stage's worker(s) and :meth:`account` in frame order;
    :meth:`set_param`, :meth:`set_bypass`, :meth:`reload` may be called from any thread.
    """

    def __init__(self, slots: list[StageSlot], device: str | torch.device | None = None) -> None:
        self.slots = slots
        self.device = device
        self.bypass = False
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], Any] = {}
        self._swaps: list[tuple[str, StageSlot]] = []
        self._reloading: set[str] = set()
        #: called with (event, detail) for "error", "loading", "loaded", "recovered" (a frame
        #: went through every stage again after a stage failed); set by the engine/OSC.
        self.on_event: Callable[[str, str], None] = lambda event, detail: None
        self.last_error: str | None = None
        self._frame_failed = False
        self._apply_lock = threading.RLock()

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_spec(cls, spec: list[tuple[str, dict[str, Any]]], device: str | torch.device | None = None) -> Chain:
        """Build stages from ``[(stage id or OSC name, {param: value}), ...]``.

        A stage whose config sets ``bypass_on_load_error`` (the avatar stage) and fails
        to load is replaced by an :class:`UnloadedStage` that passes frames through;
        ``last_error`` holds the one-line reason and a later reload can bring it back.

        Raises:
            ConfigError: unknown stage or bad parameter (names the field).
            BridgeError: a stage without ``bypass_on_load_error`` failed to load.
        """
        slots = []
        errors = []
        for name, params in spec:
            stage_cls = get_stage(name)
            config_cls = stage_cls.get_config_class()
            config = validate_params(config_cls, params or {})
            stage, error = build_or_bypass(config, stage_cls, device)
            if error:
                errors.append(error)
            slots.append(StageSlot(config_cls.osc_name, stage, config))
        chain = cls(slots, device)
        chain.last_error = "; ".join(errors) or None
        return chain

    def slot(self, name: str) -> StageSlot:
        """The slot whose OSC name or stage id is ``name``. Raises ConfigError if absent."""
        for slot in self.slots:
            if name in (slot.name, slot.config.pipeline_id):
                return slot
        names = ", ".join(s.name for s in self.slots) or "none"
        raise ConfigError(f"no stage {name!r} in this chain (stages: {names})")

    # ----------------------------------------------------------------- live control
    def set_param(self, stage: str, param: str, value: Any) -> Any:
        """Validate ``value`` for ``stage.param`` and queue it for the next frame.

        Returns the value as it will be applied (after pydantic's coercion). Load-time
        parameters start a background reload instead (see :meth:`reload`).

        Raises:
            ConfigError: unknown stage or parameter, wrong type, out of range.
        """
        slot = self.slot(stage)
        config_cls = type(slot.config)
        if param not in config_cls.model_fields:
            raise ConfigError(f"{slot.name} has no parameter {param!r}")
        with self._lock:
            current = slot.config.model_dump()
            current.update({p: v for (s, p), v in self._pending.items() if s == slot.name})
        checked = validate_params(config_cls, {**current, param: value})
        applied = getattr(checked, param)
        if config_cls.is_load_param(param):
            self.reload(slot.name, {param: applied})
        else:
            with self._lock:
                self._pending[(slot.name, param)] = applied
        return applied

    def set_bypass(self, on: bool) -> None:
        """Send the input through untouched (opaque alpha) while ``on``."""
        self.bypass = bool(on)

    def reload(self, stage: str, load_params: dict[str, Any], wait: bool = False) -> threading.Thread:
        """Rebuild ``stage`` with new load-time parameters in a background thread.

        Frames keep flowing through the old stage; the new one is swapped in at the next
        frame boundary. On failure the old stage and parameters stay, ``last_error`` is
        set and ``on_event("error", message)`` is called.
        """
        slot = self.slot(stage)
        config = validate_params(type(slot.config), load_params, base=slot.config)
        stage_cls = stage_class(slot.stage)
        self.on_event("loading", slot.name)
        with self._lock:
            self._reloading.add(slot.name)

        def work() -> None:
            try:
                new_stage = build_stage(config, stage_cls, self.device)
                new_slot = StageSlot(slot.name, new_stage, config)
            except Exception as exc:  # keep the old stage running
                self.last_error = f"reload of {slot.name} failed, kept the running stage: {exc}"
                log.error(self.last_error)
                with self._lock:
                    self._reloading.discard(slot.name)
                self.on_event("error", self.last_error)
                return
            with self._lock:
                self._swaps.append((slot.name, new_slot))

        thread = threading.Thread(target=work, name=f"reload-{slot.name}", daemon=True)
        thread.start()
        if wait:
            thread.join()
        return thread

    @property
    def unloaded_error(self) -> str | None:
        """One line naming the stages bypassed because they failed to load, or None."""
        errors = [f"{s.name} bypassed: {s.stage.error}" for s in self.slots if isinstance(s.stage, UnloadedStage)]
        return "; ".join(errors) or None

    @property
    def loading(self) -> bool:
        """True while a background reload is in progress."""
        with self._lock:
            return bool(self._reloading)

    def _apply_pending(self, name: str | None = None) -> None:
        """Apply queued swaps and runtime values: those of stage ``name``, or all (None).

        Called at a frame boundary of that stage (by the thread that runs it), so a
        stage never changes in the middle of a frame.
        """
        with self._lock:
            if not self._swaps and not self._pending:
                return
            swaps = [s for s in self._swaps if name is None or s[0] == name]
            self._swaps = [s for s in self._swaps if not (name is None or s[0] == name)]
            pending = {k: v for k, v in self._pending.items() if name is None or k[0] == name}
            for key in pending:
                del self._pending[key]
        with self._apply_lock:
            for slot_name, new_slot in swaps:
                for i, slot in enumerate(self.slots):
                    if slot.name == slot_name:
                        # keep runtime values set while the new stage was loading
                        runtime = {p: getattr(slot.config, p) for p in type(slot.config).runtime_fields()}
                        new_slot.config = validate_params(type(new_slot.config), runtime, base=new_slot.config)
                        new_slot.runtime = new_slot.config.runtime_params()
                        self.slots[i] = new_slot
                with self._lock:
                    self._reloading.discard(slot_name)
                self.on_event("loaded", slot_name)
            if pending:
                touched: dict[str, StageSlot] = {}
                for (slot_name, param), value in pending.items():
                    slot = self.slot(slot_name)
                    setattr(slot.config, param, value)
                    touched[slot.name] = slot
                for slot in touched.values():
                    slot.runtime = slot.config.runtime_params()

    # ----------------------------------------------------------------- per frame
    def process(self, frame: Frame) -> Frame:
        """Run the chain on ``frame`` ((H, W, 3) uint8) on this thread; return an RGBA frame.

        The synchronous form of what the engine's assembly line does (:meth:`begin`,
        :meth:`run_stage` for each stage, :meth:`finish`, :meth:`account`): every stage
        gets ``video`` (the previous stage's output, or the source frame), ``source_video``
        (the source frame, [(1,H,W,3) uint8]), ``keep_uint8=True``, any extra keys that
        earlier stages returned besides ``video``/``alpha`` (e.g. the pose stage's
        ``control_video``), plus its runtime parameters.

        A stage that raises does not stop the stream: the frame goes out as the input
        with opaque alpha, ``last_error`` and ``on_event("error", ...)`` report it.
        """
        self._apply_pending()
        job = self.begin(frame)
        for i in range(len(self.slots)):
            self.run_stage(i, job)
        out = self.finish(job)
        self.account(job)
        return out

    def begin(self, frame: Frame, seq: int = 0) -> Job:
        """A :class:`Job` for ``frame`` ((H, W, 3) uint8), bypassed if the chain is bypassed now."""
        return Job(frame, torch.from_numpy(frame.image)[None], seq, bypass=self.bypass or not self.slots, chain=self)

    def run_stage(self, index: int, job: Job) -> None:
        """Run stage ``index`` on ``job`` (in place). Thread-safe across stages; a stage
        whose config has ``max_workers > 1`` may be run on several frames at once.

        Queued parameters and swaps of this stage are applied first. A bypassed or
        already failed job passes untouched. A stage that raises marks the job failed and
        reports ``on_event("error", line)``; it never raises.
        """
        slot = self.slots[index]
        self._apply_pending(slot.name)
        slot = self.slots[index]  # a swap may have replaced it
        if job.bypass or job.failed:
            return
        t0 = time.perf_counter()
        current = job.src if job.video is None else stage_input(job.video)
        if slot.history.maxlen > 1:  # a stage that needs several frames: one worker, frames in order
            slot.history.append(current)
            inputs = list(slot.history)
            while len(inputs) < slot.history.maxlen:
                inputs.insert(0, inputs[0])
        else:
            inputs = [current]
        try:
            out = slot.stage(video=inputs, source_video=[job.src], keep_uint8=True, **job.extras, **slot.runtime)
            video = out["video"]
        except Exception as exc:
            job.failed = True
            self.last_error = f"stage {slot.name} failed on frame {job.frame.index}: {exc}"
            log.error(self.last_error)
            self.on_event("error", self.last_error)
            return
        job.video = video
        if "alpha" in out:
            job.alpha = out["alpha"]
        job.extras.update((k, v) for k, v in out.items() if k not in ("video", "alpha"))
        job.frame.stage_ms[slot.name] = (time.perf_counter() - t0) * 1000.0

    def finish(self, job: Job) -> Frame:
        """The RGBA frame of a job that went through every stage (thread-safe; any order):
        the last stage's output (see :func:`to_rgba`), or the input with opaque alpha for a
        bypassed or failed job."""
        if job.bypass or job.failed or job.video is None:
            return _with_image(job.frame, compose_rgba(job.frame.image[..., :3]))
        return _with_image(job.frame, to_rgba(job.video[-1], None if job.alpha is None else job.alpha[-1]))

    def account(self, job: Job) -> None:
        """Book a finished job, called in frame order: the first frame through every stage
        after a failed one reports ``on_event("recovered", "")``."""
        if job.bypass:
            return
        if job.failed:
            self._frame_failed = True
        elif self._frame_failed:  # the stages work again after a failed frame
            self._frame_failed = False
            self.on_event("recovered", "")

    def workers(self, index: int) -> int:
        """How many frames stage ``index`` may work on at once: its config's ``max_workers``,
        or 1 for a stage that needs several input frames (``prepare().input_size > 1``)."""
        slot = self.slots[index]
        if slot.history.maxlen > 1:
            return 1
        return max(1, int(type(slot.config).max_workers))

    def reset(self) -> None:
        """Forget every stage's temporal state (a new stream or a restarted source)."""
        for slot in self.slots:
            slot.history.clear()
            slot.stage.reset()


@dataclass
class Job:
    """One frame on its way through the stages (the unit the assembly line hands on).

    Attributes:
        frame: the source frame; its ``stage_ms`` is filled in as stages run.
        src: the source pixels as (1, H, W, 3) uint8 (no copy of ``frame.image``).
        seq: position in the stream (the engine's hand-offs keep this order).
        bypass: the chain was bypassed when the frame entered: it goes out as the input.
        video: the last stage's output (T, H, W, C): uint8 in [0, 255] or float32 in [0, 1].
        alpha: the last matte a stage returned, (T, H, W, 1) uint8 or float32 [0, 1].
        extras: other outputs of earlier stages, given to later ones (e.g. ``control_video``).
        failed: a stage raised on this frame: it goes out as the input with opaque alpha.
        chain: the :class:`Chain` the frame entered (a preset switched while it is on the
            line does not change the stages it goes through).
    """

    frame: Frame
    src: torch.Tensor
    seq: int = 0
    bypass: bool = False
    video: torch.Tensor | None = None
    alpha: torch.Tensor | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    failed: bool = False
    chain: Any = field(default=None, repr=False)


def stage_input(video: torch.Tensor) -> torch.Tensor:
    """A stage's output (T, H, W, C) as the next stage's input frame (1, H, W, C) in [0, 255].

    uint8 output is handed on as it is (no copy, no round trip); float32 [0, 1] output
    is scaled back to [0, 255] float32 (Scope's contract between stages).
    """
    last = video[-1:]
    return last if last.dtype == torch.uint8 else last.mul(255.0)


def to_rgba(video: torch.Tensor, alpha: torch.Tensor | None) -> np.ndarray:
    """One output frame -> (H, W, 4) uint8 RGBA numpy array for the sink.

    Args:
        video: (H, W, C), C = 1, 3 or 4: uint8 in [0, 255] or float in [0, 1]. A uint8
            4-channel frame is a finished RGBA frame (straight or premultiplied, as the
            stage that made it was told) and is returned as it is, ``alpha`` ignored.
        alpha: optional (H, W, 1) matte, uint8 in [0, 255] or float in [0, 1]; missing
            alpha is opaque (255). Colour is not premultiplied here: a stage returns
            premultiplied colour itself when told to.

    Returns:
        The memory of a uint8 4-channel CPU ``video`` (no copy) when C-contiguous; else a
        new array. Floats round to nearest and saturate at 0 and 255. On the CPU each plane
        is converted in one OpenCV pass (``cv2.convertScaleAbs``, about 4x faster at
        1920x1080 than the equivalent torch expression with a strided write) and uint8
        planes are not converted at all; a tensor on another device is scaled there and
        crosses as uint8.
    """
    if video.dtype == torch.uint8 and video.shape[2] == 4:
        return _plane_to_uint8(video)
    matte = None if alpha is None else _plane_to_uint8(alpha[..., 0])
    if video.shape[2] != 1:
        return compose_rgba(_plane_to_uint8(video[..., :3]), matte)
    rgba = np.empty((video.shape[0], video.shape[1], 4), np.uint8)
    cv2.cvtColor(_plane_to_uint8(video), cv2.COLOR_GRAY2RGBA, dst=rgba)  # alpha 255
    if matte is not None:
        cv2.insertChannel(matte, rgba, 3)
    return rgba


def _plane_to_uint8(values: torch.Tensor) -> np.ndarray:
    """(H, W[, C]) tensor, uint8 [0, 255] or float [0, 1] -> contiguous uint8 numpy array
    (float: value * 255, rounded; uint8 on the CPU: its own memory when contiguous)."""
    if values.dtype == torch.uint8:
        array = values.detach().cpu().numpy()
        return array if array.flags.c_contiguous else np.ascontiguousarray(array)
    if values.device.type != "cpu":
        return values.mul(255.0).add_(0.5).clamp_(0.0, 255.0).to(torch.uint8).cpu().numpy()
    values = values.detach()
    array = values.numpy() if values.dtype == torch.float32 else values.float().numpy()
    return cv2.convertScaleAbs(np.ascontiguousarray(array), alpha=255.0)


def _with_image(frame: Frame, image: np.ndarray) -> Frame:
    return Frame(image=image, index=frame.index, t_capture=frame.t_capture, pts=frame.pts, stage_ms=frame.stage_ms)
