"""The engine: source -> chain of stages -> sink, each on its own thread.

Hand-off between threads:

* live sources (camera, Spout, NDI) and live sinks use :class:`LatestSlot`: a slot of
  one frame where a new frame replaces an unread one (latest frame wins); each
  replaced frame is counted as dropped. Nothing queues up, so latency stays bounded.
* file sources use a small bounded queue with back-pressure (:class:`BlockingHandoff`):
  the reader waits for the stages, so a file in gives exactly its frames out, in order.

A live source that disappears (``SourceLost``) is reported and reopened with back-off;
the daemon does not die. Stats: fps, per-stage ms, end-to-end latency (capture to
sink write) and dropped frames, see :class:`Stats`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from bridge.chain import Chain
from bridge.errors import BridgeError, SourceLost
from bridge.frames import Frame
from bridge.transports.base import Sink, Source, StreamInfo

log = logging.getLogger("bridge.engine")

_EOS = object()  # end of stream marker
DEFAULT_FPS = 30.0


class LatestSlot:
    """Latest-frame-wins hand-off of capacity one. ``put`` never blocks.

    ``dropped`` counts items replaced before anyone read them.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Any = None
        self._full = False
        self._ended = False
        self.dropped = 0

    def put(self, item: Any) -> None:
        """Store ``item``, replacing (and counting) an unread one. The end marker never
        replaces a frame: the reader gets the last frame, then the end."""
        with self._cond:
            if item is _EOS:
                self._ended = True
            else:
                if self._full:
                    self.dropped += 1
                self._item, self._full = item, True
            self._cond.notify()

    def get(self, timeout: float | None = None) -> Any:
        """The newest item (or the end marker once drained); raises ``queue.Empty`` after
        ``timeout`` seconds without one."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._full or self._ended, timeout):
                raise queue.Empty
            if not self._full:
                return _EOS
            item, self._item, self._full = self._item, None, False
            return item


class BlockingHandoff:
    """Bounded FIFO with back-pressure: ``put`` waits while ``capacity`` items are unread."""

    dropped = 0

    def __init__(self, capacity: int = 4, stop: threading.Event | None = None) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=capacity)
        self._stop = stop or threading.Event()

    def put(self, item: Any) -> None:
        """Append ``item``, waiting for room (gives up when the engine is stopping)."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        if item is _EOS:  # make room so the consumer still sees the end
            try:
                self._queue.get_nowait()
            except queue.Empty:
                pass
            self._queue.put_nowait(item)

    def get(self, timeout: float | None = None) -> Any:
        """The oldest item; raises ``queue.Empty`` after ``timeout`` seconds without one."""
        return self._queue.get(timeout=timeout)


@dataclass
class Stats:
    """Live numbers of a running engine (read from any thread; written by the engine).

    Attributes:
        state: "starting" | "loading" | "live" | "error" | "stopped".
        fps: output frames per second over the last second.
        stage_ms: exponential moving average (alpha 0.1) of each stage's time, ms.
        latency_ms: EMA of capture-to-sink-write time, ms.
        frames_in / frames_out: frames read from the source / written to the sink.
        dropped: frames replaced before being processed or sent (live hand-offs).
        source_restarts: times a lost live source was reopened.
        last_error: the most recent error line, or None.
    """

    state: str = "starting"
    fps: float = 0.0
    stage_ms: dict[str, float] = field(default_factory=dict)
    latency_ms: float = 0.0
    frames_in: int = 0
    frames_out: int = 0
    dropped: int = 0
    source_restarts: int = 0
    last_error: str | None = None
    _out_times: list[float] = field(default_factory=list, repr=False)

    def snapshot(self) -> dict[str, Any]:
        """A plain dict copy of the public numbers."""
        return {
            "state": self.state,
            "fps": round(self.fps, 2),
            "stage_ms": {k: round(v, 3) for k, v in self.stage_ms.items()},
            "latency_ms": round(self.latency_ms, 3),
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "dropped": self.dropped,
            "source_restarts": self.source_restarts,
            "last_error": self.last_error,
        }


def _ema(old: float, new: float, first: bool, k: float = 0.1) -> float:
    return new if first else old + k * (new - old)


class Engine:
    """Runs ``source -> chain -> sink`` on three threads.

    Args:
        source: a not-yet-open :class:`Source` (opened on the source thread).
        chain: the stages.
        sink: a not-yet-open :class:`Sink` (opened on the sink thread with the first frame).
        max_frames: stop after this many source frames (None = until the source ends).
        loop: replay a file source from the start when it ends (rehearsal, soak runs).
        retry_s: first wait before reopening a lost live source; doubles up to 5 s.
        on_status: called with the :class:`Stats` after state changes and errors.

    ``run()`` blocks until the stream ends or :meth:`stop` is called and returns the
    stats; ``start()``/``stop()``/``join()`` run it in the background.
    """

    def __init__(
        self,
        source: Source,
        chain: Chain,
        sink: Sink,
        *,
        max_frames: int | None = None,
        loop: bool = False,
        retry_s: float = 0.25,
        on_status: Callable[[Stats], None] | None = None,
    ) -> None:
        self.source, self.chain, self.sink = source, chain, sink
        self.max_frames, self.loop, self.retry_s = max_frames, loop, retry_s
        self.on_status = on_status or (lambda stats: None)
        self.stats = Stats()
        self._stop = threading.Event()
        self._in = LatestSlot() if source.live else BlockingHandoff(4, self._stop)
        self._out = LatestSlot() if (source.live or sink.live) else BlockingHandoff(4, self._stop)
        self._threads: list[threading.Thread] = []
        self._fatal: BaseException | None = None
        self._opened = threading.Event()
        chain.on_event = self._on_chain_event
        if chain.last_error:  # a stage was bypassed at build time (Chain.from_spec): start in "error"
            self.stats.last_error = chain.last_error

    # ---------------------------------------------------------------- control
    def start(self) -> None:
        """Start the three threads and return at once."""
        self._set_state("loading" if self.chain.loading else ("error" if self.stats.last_error else "starting"))
        for name, target in (("source", self._source_loop), ("stages", self._stage_loop), ("sink", self._sink_loop)):
            thread = threading.Thread(target=self._guard(target), name=f"bridge-{name}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self) -> None:
        """Ask every thread to finish (the sink is closed); returns at once."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> Stats:
        """Wait for the threads to end. Raises the BridgeError that stopped the stream, if any."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if self._fatal is not None:
            raise self._fatal
        return self.stats

    def run(self) -> Stats:
        """Start, wait for the end of the stream (or Ctrl-C), return the stats."""
        self.start()
        try:
            while any(t.is_alive() for t in self._threads):
                for t in self._threads:
                    t.join(0.2)
        except KeyboardInterrupt:
            self.stop()
        return self.join()

    @property
    def running(self) -> bool:
        """True while any engine thread is alive."""
        return any(t.is_alive() for t in self._threads)

    # ---------------------------------------------------------------- threads
    def _guard(self, target: Callable[[], None]) -> Callable[[], None]:
        def wrapped() -> None:
            try:
                target()
            except BaseException as exc:  # a fatal error: report it and stop the stream
                self._fatal = exc
                message = str(exc) if isinstance(exc, BridgeError) else f"{exc.__class__.__name__}: {exc}"
                if not isinstance(exc, BridgeError):
                    log.exception("engine thread %s failed", threading.current_thread().name)
                self.stats.last_error = message
                self._set_state("error")
                self._stop.set()
                self._in.put(_EOS)
                self._out.put(_EOS)

        return wrapped

    def _source_loop(self) -> None:
        src = self.source
        delay = self.retry_s
        lost = False
        try:
            src.open()
            while not self._stop.is_set():
                if self.max_frames is not None and self.stats.frames_in >= self.max_frames:
                    break
                try:
                    frame = src.read()
                except SourceLost as exc:
                    lost = True
                    self._report(f"source lost: {exc}; retrying in {delay:.2f} s")
                    src.close()
                    if self._stop.wait(delay):
                        break
                    delay = min(delay * 2, 5.0)
                    try:
                        src.open()
                        self.stats.source_restarts += 1
                    except BridgeError as reopen:
                        self._report(f"source still unavailable: {reopen}")
                    continue
                if frame is None:
                    if self.loop and src.rewind():
                        continue
                    break
                if lost:  # the source is back: the next frame out returns the state to live
                    lost = False
                    self.clear_error()
                delay = self.retry_s
                self.stats.frames_in += 1
                self._in.put(frame)
        finally:
            src.close()
            self._in.put(_EOS)

    def _stage_loop(self) -> None:
        first = True
        while True:
            try:
                item = self._in.get(timeout=0.1)
            except queue.Empty:
                if self._stop.is_set() and not self.source.live and not self._threads[0].is_alive():
                    break
                continue
            if item is _EOS:
                break
            out = self.chain.process(item)
            for name, ms in out.stage_ms.items():
                self.stats.stage_ms[name] = _ema(self.stats.stage_ms.get(name, 0.0), ms, first)
            first = False
            self.stats.dropped = self._in.dropped + self._out.dropped
            self._out.put(out)
        self._out.put(_EOS)

    def _sink_loop(self) -> None:
        opened = False
        times = self.stats._out_times
        try:
            while True:
                try:
                    item = self._out.get(timeout=self.sink.idle_s if opened else 0.1)
                except queue.Empty:
                    if opened:  # no new frame: a live sink may repeat a hold frame (NDI)
                        self.sink.idle()
                    continue
                if item is _EOS:
                    break
                frame: Frame = item
                if not opened:
                    fps = self.source.fps or DEFAULT_FPS
                    audio = getattr(self.source, "audio_path", None)
                    self.sink.open(StreamInfo(frame.width, frame.height, fps, audio, frame.pts or 0.0))
                    opened = True
                self.sink.write(frame)
                now = time.perf_counter()
                self.stats.latency_ms = _ema(self.stats.latency_ms, (now - frame.t_capture) * 1000.0, self.stats.frames_out == 0)
                self.stats.frames_out += 1
                times.append(now)
                while times and now - times[0] > 1.0:
                    times.pop(0)
                self.stats.fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
                if self.stats.state in ("starting", "error") and not self.chain.loading and self.stats.last_error is None:
                    self._set_state("live")
        finally:
            self.sink.close()
            self.stats.dropped = self._in.dropped + self._out.dropped
            if self.stats.state != "error" or self._fatal is None:
                self._set_state("stopped")

    # ---------------------------------------------------------------- status
    def _set_state(self, state: str) -> None:
        if self.stats.state != state:
            self.stats.state = state
            self.on_status(self.stats)

    def _report(self, message: str) -> None:
        log.warning(message)
        self.stats.last_error = message
        self._set_state("error")

    def _on_chain_event(self, event: str, detail: str) -> None:
        if event == "loading":
            self._set_state("loading")
        elif event == "recovered":
            self.clear_error()
            if not self.stats.last_error and not self.chain.loading:
                self._set_state("live")
        elif event == "loaded":
            self.clear_error()
            self._set_state("error" if self.stats.last_error else "live")
        elif event == "error":
            self.stats.last_error = detail
            self._set_state("error")
            self.on_status(self.stats)

    def clear_error(self) -> None:
        """Forget the last error so the state can return to ``live`` with the next frame,
        unless a stage is still bypassed after a failed load (that error stays)."""
        self.stats.last_error = self.chain.unloaded_error
