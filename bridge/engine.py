"""The engine: source -> stages -> sink, as an assembly line of threads.

Threads (each named, see :meth:`Engine.start`):

* ``bridge-source`` reads the source;
* one worker per stage, ``bridge-stage-<name>`` (``-<n>`` when a stage has several):
  pose of frame N+1, diffusion of N and alpha of N-1 run at the same time, so
  throughput is set by the slowest stage, not by the sum of all stages. A stage runs
  frames one at a time and in order on its one worker, unless its config sets
  ``max_workers > 1`` (stateless, thread-safe stages only; see
  :class:`bridge.stages.base.BasePipelineConfig`); the inference runtimes release the
  GIL, so CPU stages really do run side by side;
* ``bridge-sink`` writes the sink.

Hand-offs:

* source -> first stage: live sources (camera, Spout, NDI) use :class:`LatestSlot`, a
  slot of one frame where a new frame replaces an unread one (latest frame wins; each
  replaced frame is counted as dropped), so nothing queues up; file sources use a small
  bounded queue with back-pressure (:class:`BlockingHandoff`): the reader waits for
  the stages, so a file in gives exactly its frames out, in order.
* stage -> stage: a FIFO with one place per worker of the stage before it. A worker
  takes a new frame only once its previous result has been taken by the next stage, so
  no stage works ahead of the line and a live frame is picked up as late as possible.
  Results of a stage with several workers are put back in frame order before they move
  on (:class:`_Reorder`), so the order of frames is kept and every frame is processed
  once by each stage.
* last stage -> sink: like source -> first stage (latest wins for live sources or
  sinks, back-pressure for files).

Latency: a frame spends its own time in each stage plus, at each of the S-1 boundaries
between S stages, a wait of at most the next stage's time (it waits for that stage to
finish the frame before it), so at most sum(stages) + (S-1) * max(stage): the latency
grows by at most S-1 frame intervals of the slowest stage over the serial chain (two
frames for pose -> avatar -> alpha). With stages of 20/30/10 ms the line delivers a
frame every 30 ms (serial: every 60 ms); in the steady state a frame waits 10 ms before
the 30 ms stage and not at all before the 10 ms one, so it is 70 ms old at the sink
(serial: 60 ms; bound: 120 ms), plus the hand-offs at the source and sink as before.

Live parameter updates, bypass, background reloads, stage errors and ``recovered``
events work as in :meth:`bridge.chain.Chain.process` (see :mod:`bridge.chain`): each
stage applies its own queued changes at its own frame boundary; a bypass or a failure
travels with the frame. ``Engine(..., pipelined=False)`` runs the whole chain on one
thread (:meth:`Chain.process`), as before the assembly line; the benchmark compares
the two.

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


class _Reorder:
    """Puts results back in frame order: ``deliver(seq, item)`` from any worker; items
    go to ``emit`` (called under a lock, one at a time) in ``seq`` order 0, 1, 2, ..."""

    def __init__(self, emit: Callable[[Any], None]) -> None:
        self._emit = emit
        self._lock = threading.Lock()
        self._waiting: dict[int, Any] = {}
        self._next = 0

    def deliver(self, seq: int, item: Any) -> None:
        with self._lock:
            self._waiting[seq] = item
            while self._next in self._waiting:
                self._emit(self._waiting.pop(self._next))
                self._next += 1

    def flush(self) -> None:
        """Emit what is still waiting (after a worker died mid-frame), in order."""
        with self._lock:
            for seq in sorted(self._waiting):
                self._emit(self._waiting.pop(seq))


class _Station:
    """One stage's place on the assembly line: its workers, its inbox and its output.

    ``index``: the chain slot it runs, or None for the whole chain on one worker
    (``pipelined=False``). ``inbox`` is the FIFO the previous station fills (None for
    the first station, which reads the engine's input hand-off); ``room`` counts the
    free places in it (one per worker of the previous station).
    """

    def __init__(self, index: int | None, name: str, workers: int, first: bool, last: bool) -> None:
        self.index, self.name, self.workers, self.first, self.last = index, name, workers, first, last
        self.inbox: queue.Queue | None = None if first else queue.Queue()
        self.room: threading.Semaphore | None = None
        self.next: _Station | None = None
        self.output: _Reorder | None = None
        self.take_lock = threading.Lock()
        self.seq = 0
        self.ended = False
        self.alive = workers
        self.alive_lock = threading.Lock()
        self.serial = threading.Lock()  # for a stage that allows fewer workers than the station has


@dataclass
class _Whole:
    """A frame for the one-thread chain (``pipelined=False``) with its place in the stream."""

    frame: Frame
    seq: int


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
    """Runs ``source -> chain -> sink``: a source thread, the stages' workers, a sink thread.

    Args:
        source: a not-yet-open :class:`Source` (opened on the source thread).
        chain: the stages.
        sink: a not-yet-open :class:`Sink` (opened on the sink thread with the first frame).
        max_frames: stop after this many source frames (None = until the source ends).
        loop: replay a file source from the start when it ends (rehearsal, soak runs).
        retry_s: first wait before reopening a lost live source; doubles up to 5 s.
        on_status: called with the :class:`Stats` after state changes and errors.
        pipelined: run the stages as an assembly line, one worker (or ``max_workers``)
            per stage (default); False runs the whole chain on one thread.

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
        pipelined: bool = True,
    ) -> None:
        self.source, self.chain, self.sink = source, chain, sink
        self.max_frames, self.loop, self.retry_s = max_frames, loop, retry_s
        self.pipelined = pipelined
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
        """Start the source, stage and sink threads and return at once."""
        self._set_state("loading" if self.chain.loading else ("error" if self.stats.last_error else "starting"))
        targets: list[tuple[str, Callable[[], None]]] = [("bridge-source", self._source_loop)]
        for station in self._stations():
            for n in range(station.workers):
                name = f"bridge-stage-{station.name}" + (f"-{n + 1}" if station.workers > 1 else "")
                targets.append((name, lambda st=station: self._station_loop(st)))
        targets.append(("bridge-sink", self._sink_loop))
        for name, target in targets:
            thread = threading.Thread(target=self._guard(target), name=name, daemon=True)
            self._threads.append(thread)
        for thread in self._threads:
            thread.start()

    def _stations(self) -> list[_Station]:
        """The assembly line: one station per stage (or one for the whole chain), linked."""
        slots = self.chain.slots if self.pipelined else []
        if slots:
            stations = [_Station(i, slot.name, self.chain.workers(i), i == 0, i == len(slots) - 1) for i, slot in enumerate(slots)]
        else:
            stations = [_Station(None, "chain", 1, True, True)]
        for station, following in zip(stations, stations[1:]):
            station.next = following
            following.room = threading.Semaphore(station.workers)
            station.output = _Reorder(following.inbox.put)  # type: ignore[union-attr]
        stations[-1].output = _Reorder(self._emit)
        return stations

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
    def _source_thread(self) -> threading.Thread:
        return self._threads[0]

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

    def _station_loop(self, station: _Station) -> None:
        """One worker of ``station``: take a frame, run the stage, hand the result on in order."""
        try:
            while True:
                if not self._wait_for_room(station):
                    break
                job = self._take(station)
                if job is _EOS:
                    self._give_back_room(station)
                    break
                assert station.output is not None
                if station.index is None:  # the whole chain on this thread
                    station.output.deliver(job.seq, (job, self.chain.process(job.frame)))
                    continue
                chain = job.chain or self.chain
                self._run_stages(station, chain, job)
                station.output.deliver(job.seq, (job, chain.finish(job)) if station.last else job)
        finally:
            with station.alive_lock:
                station.alive -= 1
                last_worker = station.alive == 0
            if last_worker:  # everything taken has been delivered: the end follows it
                assert station.output is not None
                station.output.flush()
                if station.next is not None:
                    station.next.inbox.put(_EOS)  # type: ignore[union-attr]
                else:
                    self._out.put(_EOS)

    @staticmethod
    def _run_stages(station: _Station, chain: Chain, job: Any) -> None:
        """The stage(s) of ``job``'s own chain at ``station``'s place on the line.

        The line is laid out for the chain the engine started with; a preset switched while
        it runs (:attr:`chain` replaced) may have more or fewer stages. A station runs the
        stage at its index, the last station also every stage after it, and a station past
        the chain's end passes the job on. A stage that allows fewer workers than the
        station has (``Chain.workers``) runs one frame at a time.
        """
        assert station.index is not None
        stop = len(chain.slots) if station.last else min(station.index + 1, len(chain.slots))
        for index in range(station.index, stop):
            if chain.workers(index) < station.workers:
                with station.serial:
                    chain.run_stage(index, job)
            else:
                chain.run_stage(index, job)

    def _wait_for_room(self, station: _Station) -> bool:
        """Wait for a free place in the next station's inbox (False: a fatal error stopped the engine)."""
        following = station.next
        if following is None or following.room is None:
            return True
        while not following.room.acquire(timeout=0.1):
            if self._fatal is not None:
                return False
        return True

    def _give_back_room(self, station: _Station) -> None:
        if station.next is not None and station.next.room is not None:
            station.next.room.release()

    def _take(self, station: _Station) -> Any:
        """The next job for ``station`` (in frame order), or ``_EOS`` at the end of the stream."""
        while True:
            if station.ended or self._fatal is not None:
                return _EOS
            if station.first:
                with station.take_lock:
                    try:
                        item = self._in.get(timeout=0.1)
                    except queue.Empty:
                        if self._stop.is_set() and not self._source_thread.is_alive():
                            station.ended = True
                        continue
                    if item is _EOS:
                        station.ended = True
                        return _EOS
                    job = self.chain.begin(item, station.seq) if station.index is not None else _Whole(item, station.seq)
                    station.seq += 1
                    return job
            try:
                item = station.inbox.get(timeout=0.1)  # type: ignore[union-attr]
            except queue.Empty:
                continue
            if item is _EOS:
                station.ended = True
                station.inbox.put(_EOS)  # type: ignore[union-attr]  # for the other workers
                return _EOS
            assert station.room is not None
            station.room.release()
            return item

    def _emit(self, item: tuple[Any, Frame]) -> None:
        """The last station's results, in frame order: book them and hand them to the sink."""
        job, frame = item
        if not isinstance(job, _Whole):
            (job.chain or self.chain).account(job)
        self._out.put(frame)

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
                for name, ms in frame.stage_ms.items():
                    self.stats.stage_ms[name] = _ema(self.stats.stage_ms.get(name, 0.0), ms, self.stats.frames_out == 0)
                self.stats.dropped = self._in.dropped + self._out.dropped
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
