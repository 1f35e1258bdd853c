"""What each OSC address does to the running engine.

* ``/bridge/<stage>/<param> <value>``: coerce (:mod:`bridge.osc.values`), validate and
  queue with :meth:`bridge.chain.Chain.set_param`; ack with the applied value. Runtime
  parameters apply at the next frame (several sets within one frame coalesce, last
  wins); load-time parameters reload the stage in the background (state ``loading``)
  while frames keep flowing through the old stage.
* ``/bridge/preset s``: load and validate the whole preset first; then apply it whole
  or not at all (:func:`switch_preset`).
* ``/bridge/bypass i``, ``/bridge/reload``, ``/bridge/ping``.

Out-of-range values are **rejected**, never clamped: the stage keeps its last good
value and the sender gets ``/bridge/error`` naming the field and its bounds. A clamp
would silently apply a value nobody sent (a MIDI knob sending 0..127 to a 0..1 field
would sit at 1.0). Every refused message gets exactly one ``/bridge/error``.
"""

from __future__ import annotations

import functools
import logging
import threading
from typing import Any

from bridge.chain import Chain, StageSlot, UnloadedStage, build_stage, validate_params
from bridge.errors import BridgeError
from bridge.osc.schema import CONTROLS, PREFIX, osc_schema
from bridge.osc.status import StatusSender
from bridge.osc.values import as_bool, as_string, coerce
from bridge.osc.paths import PathPolicy
from bridge.presets import Preset, load_preset
from bridge.stages.registry import get_stage

log = logging.getLogger("bridge.osc")


class Busy(BridgeError):
    """A preset switch or reload is already running."""


def switch_preset(engine: Any, preset: Preset) -> Chain:
    """Build the chain of ``preset`` next to the running one; the caller swaps it in.

    Every stage whose class and load-time parameters are unchanged keeps its running
    instance (no reload; its temporal state carries on) and gets the preset's runtime
    values; other stages are built new (strictly: a stage that fails to load fails the
    switch, even one that ``bypass_on_load_error`` lets start bypassed). Fields the preset does not set take their
    defaults. Bypass carries over. Nothing touches the running chain, so when a build
    fails the old chain runs on unchanged.

    Args:
        engine: the running :class:`bridge.engine.Engine` (its ``chain`` is read).
        preset: a validated preset (:func:`bridge.presets.load_preset`).

    Returns:
        The new :class:`Chain`, not yet running.

    Raises:
        BridgeError: a stage failed to load (e.g. ModelMissingError); ConfigError for
            a bad parameter.
    """
    old: Chain = engine.chain
    running = {slot.name: slot for slot in old.slots}
    slots = []
    for name, params in preset.chain_spec():
        stage_cls = get_stage(name)
        config_cls = stage_cls.get_config_class()
        config = validate_params(config_cls, params)
        current = running.get(config_cls.osc_name)
        if _reusable(current, stage_cls, config):
            stage = current.stage
        else:
            stage = build_stage(config, stage_cls, old.device)
        slots.append(StageSlot(config_cls.osc_name, stage, config))
    new = Chain(slots, old.device)
    new.bypass = old.bypass
    new.on_event = old.on_event
    return new


def _reusable(slot: StageSlot | None, stage_cls: type, config: Any) -> bool:
    """A running stage can serve ``config`` as it is: same class, same load-time
    parameters, and loaded (a stage bypassed after a failed load is built again)."""
    return (slot is not None and not isinstance(slot.stage, UnloadedStage) and type(slot.stage) is stage_cls
            and slot.config.load_params() == config.load_params())


def needs_build(engine: Any, preset: Preset) -> bool:
    """True when switching to ``preset`` must build at least one stage (a load)."""
    running = {slot.name: slot for slot in engine.chain.slots}
    for name, params in preset.chain_spec():
        stage_cls = get_stage(name)
        config_cls = stage_cls.get_config_class()
        if not _reusable(running.get(config_cls.osc_name), stage_cls, validate_params(config_cls, params)):
            return True
    return False


def release_freed_memory() -> None:
    """Hand memory that replaced stages freed back to the system (glibc's ``malloc_trim(0)``;
    a no-op elsewhere).

    Stages hold native buffers (LiteRT interpreters, their XNNPACK workspaces) that the
    engine's threads touch; once a stage is dropped they are freed, but glibc keeps the
    freed pages in its per-thread arenas. Measured with a flood of 400 switches among four
    presets of different stage lists (``tests/test_osc_flood.py``): no stage or chain stayed
    alive, yet resident memory grew by 526 MB a round without the trim.
    """
    global _malloc_trim
    if _malloc_trim is None:
        try:
            import ctypes
            import ctypes.util

            _malloc_trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
        except (OSError, AttributeError):  # not glibc (macOS, Windows, musl)
            _malloc_trim = False
    if _malloc_trim:
        import gc

        gc.collect()
        _malloc_trim(0)


_malloc_trim: Any = None


class Controls:
    """OSC handlers bound to one engine; each sends exactly one reply per message.

    Args:
        engine: the running engine (``engine.chain`` may be replaced by a preset switch).
        replies: where acks, errors and pongs go.

    Handlers run on the OSC server thread and never raise.
    """

    def __init__(self, engine: Any, replies: StatusSender, paths: PathPolicy | None = None) -> None:
        self.engine = engine
        self.replies = replies
        self.paths = paths or PathPolicy()
        self.applied = 0
        self.refused = 0
        self.coalesced = 0  # preset switches dropped because a newer one overtook them
        self._switch_lock = threading.Condition()
        self._switching: str | None = None  # the preset being built, or waiting to be
        self._pending: tuple[str, Preset] | None = None  # the newest switch not yet being built
        self._builder: threading.Thread | None = None

    # ------------------------------------------------------------- routing
    def routes(self) -> dict[str, Any]:
        """Address -> handler for every stage parameter of every registered stage
        (from :func:`bridge.osc.schema.osc_schema`) and the controls."""
        routes: dict[str, Any] = {}
        for entry in osc_schema(include_controls=False):
            stage, param = entry["address"].split("/")[2:4]
            routes[entry["address"]] = functools.partial(self._param_route, stage, param)
        handlers = {"preset": self.preset, "bypass": self.bypass, "reload": self.reload, "ping": self.ping}
        for entry in CONTROLS:
            routes[entry["address"]] = handlers[entry["address"].rsplit("/", 1)[1]]
        return routes

    def _refuse(self, address: str, reason: str) -> None:
        self.refused += 1
        log.debug("OSC %s refused: %s", address, reason)
        self.replies.error(address, reason)

    def _accepted(self, stale_error: str | None) -> None:
        """Count an applied control; an error reported before it was sent is cleared
        (the next frame turns the state back to ``live``). An error the control itself
        caused (a reload that failed at once) stays."""
        self.applied += 1
        stats = self.engine.stats
        if stale_error is not None and stats.last_error == stale_error and not self.engine.chain.loading:
            self.engine.clear_error()

    # ------------------------------------------------------------- handlers
    def _param_route(self, stage: str, param: str, pattern: str, args: tuple) -> None:
        # python-osc passes the address as sent, which may be a pattern (/bridge/alpha/*)
        self.param(stage, param, args)

    def param(self, stage: str, param: str, args: tuple) -> None:
        """``/bridge/<stage>/<param> value``: coerce, validate, queue for the next frame, ack.

        Refused (one ``/bridge/error``): wrong type or count of arguments, out of range,
        a stage that is not in the running chain, a load-time change while a preset
        loads, a path outside the allowed folders (:mod:`bridge.osc.paths`).
        """
        address = f"{PREFIX}/{stage}/{param}"
        stale = self.engine.stats.last_error
        try:
            config = get_stage(stage).get_config_class()
            if config.is_load_param(param) and self._switching:
                raise Busy(f"a switch to preset {self._switching!r} is loading; send it again when state is live")
            value = coerce(config, param, args)
            self.paths.check(config, param, value)
            applied = self.engine.chain.set_param(stage, param, value)
        except BridgeError as exc:
            self._refuse(address, str(exc))
            return
        except Exception as exc:  # a bug must cost one message, not the server
            log.exception("OSC %s failed", address)
            self._refuse(address, f"internal error: {exc}")
            return
        self._accepted(stale)
        self.replies.ack(address, applied)

    def unknown(self, address: str, args: tuple) -> None:
        """Any address no route matches."""
        self._refuse(address, "unknown address; 'avatar-bridge osc-schema' lists them")

    def bypass(self, address: str, args: tuple) -> None:
        """``/bridge/bypass i``: 1 sends the input through untouched, 0 runs the stages."""
        stale = self.engine.stats.last_error
        try:
            if len(args) != 1:
                raise BridgeError(f"expects one value (0 or 1), got {len(args)}")
            on = as_bool(args[0])
        except BridgeError as exc:
            self._refuse(address, str(exc))
            return
        self.engine.chain.set_bypass(on)
        self._accepted(stale)
        self.replies.ack(address, int(on))

    def ping(self, address: str, args: tuple) -> None:
        """``/bridge/ping [args]`` -> ``/bridge/pong [args]``."""
        self.replies.pong(*args)

    def reload(self, address: str, args: tuple) -> None:
        """``/bridge/reload``: rebuild every stage with its current parameters, in the background."""
        chain: Chain = self.engine.chain
        stale = self.engine.stats.last_error
        if self._switching or chain.loading:
            self._refuse(address, "a load is already running; send it again when state is live")
            return
        try:
            for slot in list(chain.slots):
                chain.reload(slot.name, {})
        except BridgeError as exc:
            self._refuse(address, str(exc))
            return
        self._accepted(stale)
        self.replies.ack(address)

    def preset(self, address: str, args: tuple) -> None:
        """``/bridge/preset s``: validate the whole preset, then apply it whole or not at all.

        A preset that only changes runtime values (same stages, same load-time
        parameters) lands at the next frame. One that needs a stage built loads in
        the background (state ``loading``) while frames flow through the old chain,
        then swaps in at a frame boundary; if any build fails the old chain and all
        its parameters stay and the error is reported.
        """
        stale = self.engine.stats.last_error
        try:
            if len(args) != 1:
                raise BridgeError(f"expects one preset name, got {len(args)} values")
            name = as_string(args[0])
            preset = load_preset(name)  # checks the name (no paths), safe YAML, every field
            with self._switch_lock:
                if self.engine.chain.loading and not self._switching:
                    raise Busy("a reload is running; send it again when state is live")
                background = bool(self._switching) or needs_build(self.engine, preset)
                if background:
                    self._queue(address, preset)
            if not background:
                self._swap(switch_preset(self.engine, preset), preset)
                self._accepted(stale)
                self.replies.ack(address, name)
                return
        except BridgeError as exc:
            self._refuse(address, str(exc))
            return
        except Exception as exc:
            log.exception("OSC %s failed", address)
            self._refuse(address, f"internal error: {exc}")
            return

    def _queue(self, address: str, preset: Preset) -> None:
        """Make ``preset`` the next switch to build (caller holds ``_switch_lock``).

        Latest wins: a switch still waiting is dropped (counted in :attr:`coalesced`, one
        ``/bridge/error`` line says which preset overtook it), so however fast switches
        come, at most one build runs and one waits, and the builds run one after another
        on one long-lived thread (:meth:`_build_loop`) instead of a new thread per switch.
        """
        if self._pending is not None:
            old_address, old = self._pending
            self.coalesced += 1
            self.replies.error(old_address, f"preset {old.name!r} dropped before it loaded: overtaken by {preset.name!r}")
        self._pending = (address, preset)
        if not self._switching:
            self._switching = preset.name
            self.engine.chain.on_event("loading", f"preset {preset.name}")
        if self._builder is None:
            self._builder = threading.Thread(target=self._build_loop, name="preset-builder", daemon=True)
            self._builder.start()
        self._switch_lock.notify()

    def _build_loop(self) -> None:
        """The builder thread (one for the daemon's life): build the newest queued switch and
        apply it unless a newer one arrived meanwhile (then it is dropped and the newer one
        is built); idle while none waits."""
        while True:
            with self._switch_lock:
                while self._pending is None:
                    self._switching = None
                    self._switch_lock.wait()
                address, preset = self._pending
                self._pending = None
                self._switching = preset.name
                # (again) loading: a failed build before this one may have left the state at error
                self.engine.chain.on_event("loading", f"preset {preset.name}")
            try:
                self._load_preset(address, preset)
            except Exception:  # a bug must cost this switch, not every later one
                log.exception("preset %s: build failed", preset.name)
            if self._pending is None:  # once a flood is over: the trim walks every arena, the frames wait meanwhile
                release_freed_memory()

    def _load_preset(self, address: str, preset: Preset) -> None:
        chain = self.engine.chain
        try:
            new = switch_preset(self.engine, preset)
        except Exception as exc:
            message = f"preset {preset.name!r} failed to load, kept the running one: {exc}"
            log.error(message)
            self.refused += 1
            self.replies.error(address, message)
            chain.on_event("error", message)
            return
        with self._switch_lock:
            overtaken = self._pending is not None
            if overtaken:
                self.coalesced += 1
            else:
                self._swap(new, preset)
        if overtaken:
            # built, but a newer switch came before it could be applied: drop it
            self.replies.error(address, f"preset {preset.name!r} dropped after it loaded: overtaken by {self._pending_name()!r}")
            del new
            return
        new.on_event("loaded", f"preset {preset.name}")
        self.applied += 1
        self.replies.ack(address, preset.name)

    def _pending_name(self) -> str | None:
        pending = self._pending
        return None if pending is None else pending[1].name

    def _swap(self, new: Chain, preset: Preset) -> None:
        # the engine's first station reads engine.chain for each new frame, and every frame
        # goes through the stages of the chain it entered (Engine._run_stages), however many:
        # the swap lands between two frames.
        self.engine.chain = new
        self.engine.preset = preset
        log.info("preset %s applied", preset.name)
