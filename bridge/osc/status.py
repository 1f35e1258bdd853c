"""What the daemon sends back over OSC: replies (ack, error, pong) and the status.

Everything goes to one reply address (``--osc-reply HOST:PORT``, default
127.0.0.1:9001), where TouchDesigner's OSC In DAT listens:

* ``/bridge/ack/<stage>/<param> <applied value>`` after a parameter was accepted (the
  value as it will be applied, after coercion), ``/bridge/ack/preset s``,
  ``/bridge/ack/bypass i``, ``/bridge/ack/reload``;
* ``/bridge/error s`` ``"<address>: <reason>"`` for every message that was refused;
* ``/bridge/pong`` (with the ping's arguments) for ``/bridge/ping``;
* once a second (and at once when the state or the error changes):
  ``/bridge/status/heartbeat i`` (a counter: 1, 2, 3, ...), ``/bridge/status/state s``
  (starting | loading | live | error | stopped), ``/bridge/status/fps f``,
  ``/bridge/status/latency_ms f``, ``/bridge/status/dropped i``,
  ``/bridge/status/error s`` (the last error, "" when none), and the OSC server's own
  counters ``/bridge/status/malformed i`` (undecodable datagrams dropped) and
  ``/bridge/status/ignored i`` (datagrams from addresses not allowed), and
  ``/bridge/status/coalesced i`` (preset switches dropped because a newer one overtook them).

Sending never raises: a reply that cannot be sent (no network, full buffer) is
counted in :attr:`StatusSender.send_failures` and the daemon goes on.
"""

from __future__ import annotations

import functools
import logging
import socket
import threading
import time
from typing import Any, Callable

from pythonosc.osc_message_builder import build_msg

log = logging.getLogger("bridge.osc")

STATUS = "/bridge/status"


def _osc_value(value: Any) -> Any:
    """A Python value as python-osc can send it (bool -> T/F, ints beyond int32 -> float)."""
    if isinstance(value, bool) or isinstance(value, (float, str)):
        return value
    if isinstance(value, int):
        return value if -(2**31) <= value < 2**31 else float(value)
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return [_osc_value(v) for v in value]
    return str(value)


@functools.lru_cache(maxsize=1024)
def _cached_dgram(address: str, values: tuple) -> bytes:
    """The datagram of ``address values``. Cached: python-osc's builder costs ~40 us, and
    a sender repeating a message (a flood, a fader parked out of range) gets the same
    reply each time."""
    return build_msg(address, list(values)).dgram


class StatusSender:
    """Sends replies and the 1 Hz status to ``host:port`` over UDP.

    Args:
        host, port: the reply address.
        stats: returns the engine's :class:`bridge.engine.Stats` (read each tick).
        counters: returns extra ``{name: int}`` sent as ``/bridge/status/<name> i``.
        interval_s: heartbeat period in seconds (1.0, the rate the issue and
            StreamDiffusionTD use).

    Raises:
        OSError: the reply host cannot be resolved (caught by the daemon and turned
            into a one-line error).
    """

    def __init__(self, host: str, port: int, stats: Callable[[], Any], counters: Callable[[], dict[str, int]] | None = None,
                 interval_s: float = 1.0) -> None:
        # IPv4 first: "localhost" often resolves to ::1 first, where TD (listening on IPv4) hears nothing
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        info = next((i for i in infos if i[0] == socket.AF_INET), infos[0])
        self.address = info[4]
        self._sock = socket.socket(info[0], socket.SOCK_DGRAM)
        self._stats, self._counters = stats, counters or (lambda: {})
        self.interval_s = interval_s
        self.sent = 0
        self.send_failures = 0
        self.heartbeats = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._last_state: str | None = None
        self._last_error: str | None = None

    # ------------------------------------------------------------- replies
    def send(self, address: str, *args: Any) -> None:
        """Send one OSC message ``address args...``; never raises."""
        try:
            values = tuple(_osc_value(a) for a in args)
            try:
                dgram = _cached_dgram(address, values)
            except TypeError:  # unhashable (an array argument)
                dgram = build_msg(address, list(values)).dgram
            self._sock.sendto(dgram, self.address)
            self.sent += 1
        except Exception as exc:  # OSError (buffer full, no route) or a value OSC cannot carry
            self.send_failures += 1
            log.debug("OSC reply %s not sent: %s", address, exc)

    def ack(self, address: str, value: Any = None) -> None:
        """``/bridge/ack/<rest of address> <value>`` (no argument when ``value`` is None)."""
        suffix = address[len("/bridge"):] if address.startswith("/bridge/") else address
        if value is None:
            self.send(f"/bridge/ack{suffix}")
        else:
            self.send(f"/bridge/ack{suffix}", value)

    def error(self, address: str, reason: str) -> None:
        """``/bridge/error s`` with ``"<address>: <reason>"``."""
        self.send("/bridge/error", f"{address}: {reason}")

    def pong(self, *args: Any) -> None:
        """``/bridge/pong`` with the ping's arguments."""
        self.send("/bridge/pong", *args)

    # ------------------------------------------------------------- status
    def send_status(self, heartbeat: bool = True) -> None:
        """Send the full status (heartbeat first when ``heartbeat``)."""
        stats = self._stats()
        with self._lock:
            if heartbeat:
                self.heartbeats += 1
                self.send(f"{STATUS}/heartbeat", self.heartbeats)
            self._last_state, self._last_error = stats.state, stats.last_error
            self.send(f"{STATUS}/state", stats.state)
            self.send(f"{STATUS}/fps", float(stats.fps))
            self.send(f"{STATUS}/latency_ms", float(stats.latency_ms))
            self.send(f"{STATUS}/dropped", int(stats.dropped))
            self.send(f"{STATUS}/error", stats.last_error or "")
            for name, value in self._counters().items():
                self.send(f"{STATUS}/{name}", int(value))

    def notify(self, stats: Any) -> None:
        """Engine ``on_status`` hook: send state and error at once when they changed."""
        with self._lock:
            changed_state = stats.state != self._last_state
            changed_error = stats.last_error != self._last_error
            self._last_state, self._last_error = stats.state, stats.last_error
        if changed_error:
            self.send(f"{STATUS}/error", stats.last_error or "")
        if changed_state:
            self.send(f"{STATUS}/state", stats.state)

    def _loop(self) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            try:
                self.send_status()
            except Exception:  # a stats object in a strange state must not stop the heartbeat
                log.exception("status tick failed")
            next_tick += self.interval_s
            delay = next_tick - time.monotonic()
            if delay < 0:  # fell behind (machine suspended): start a fresh schedule
                next_tick, delay = time.monotonic(), 0.0
            self._stop.wait(delay)

    def start(self) -> None:
        """Start the heartbeat thread (sends the first status at once)."""
        self._thread = threading.Thread(target=self._loop, name="bridge-osc-status", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the heartbeat, send a last status, close the socket."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        try:
            self.send_status(heartbeat=False)
        finally:
            self.close()

    def close(self) -> None:
        """Close the socket without sending anything (after a failed start)."""
        self._sock.close()
