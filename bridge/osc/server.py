"""The OSC UDP server: python-osc's dispatcher on its own thread, with an allow-list.

One thread receives and handles datagrams in arrival order (python-osc's
``BlockingOSCUDPServer`` driven by ``serve_forever``); handlers only validate and
queue, so the stream never waits for OSC. The dispatcher is built with
``strict_timing=False``: python-osc's default sleeps until a bundle's time tag, which
would block this thread (platform.md, OSC).

Before a datagram reaches the dispatcher:

* a sender that is not allowed is ignored and counted (:attr:`ServerCounters.ignored`);
  with no allow-list only loopback senders are allowed;
* a datagram that is not a decodable OSC message or bundle is dropped and counted
  (:attr:`ServerCounters.malformed`); it never reaches a handler.

A handler that raises is logged and counted (:attr:`ServerCounters.handler_errors`);
the server goes on.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import sys
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from pythonosc.dispatcher import Dispatcher
from pythonosc.dispatcher import Handler as OscHandler
from pythonosc.osc_packet import OscPacket
from pythonosc.osc_server import BlockingOSCUDPServer

from bridge.errors import ConfigError

log = logging.getLogger("bridge.osc")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK: tuple[IPNetwork, ...] = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
#: socket receive buffer asked for, bytes: room for bursts from a TD network sending
#: many channels at once (the kernel may grant less).
RECEIVE_BUFFER = 1 << 20
#: niceness added to the server thread (Linux), so the stream's threads come first
NICE = 5

#: handler(address, args) for one message.
Handler = Callable[[str, tuple], None]


def parse_allow(text: str | None) -> tuple[IPNetwork, ...] | None:
    """``"192.168.1.20,10.0.0.0/24"`` -> networks; None or "" -> None (loopback only).

    Raises:
        ConfigError: an entry is not an IP address or network (hostnames are refused:
            the allow-list must not depend on DNS).
    """
    if not text:
        return None
    networks = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ConfigError(f"--osc-allow: {part!r} is not an IP address or network (e.g. 192.168.1.20 or 192.168.1.0/24)") from None
    return tuple(networks) or None


def is_loopback_host(host: str) -> bool:
    """True when binding ``host`` only listens on this machine (127.x, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class ServerCounters:
    """What the server saw. Read from any thread; written by the server thread only.

    Attributes:
        received: datagrams received (all of them).
        ignored: datagrams from senders not on the allow-list, dropped unread.
        malformed: datagrams that are not decodable OSC, dropped.
        messages: OSC messages handed to the dispatcher (a bundle counts each message).
        handler_errors: handlers that raised (a bug; logged, the server goes on).
    """

    received: int = 0
    ignored: int = 0
    malformed: int = 0
    messages: int = 0
    handler_errors: int = 0


_PATTERN_CHARS = frozenset("*?[]{}")


class ExactFirstDispatcher(Dispatcher):
    """python-osc's Dispatcher (``strict_timing=False``) with an exact-address fast path.

    The stock :meth:`Dispatcher.handlers_for_address` compiles the incoming address
    into a regular expression and tries it against every mapped address (about 25 us
    per message with ~50 addresses). A plain address (no OSC pattern characters) is
    looked up in a dict instead, and one that no route has goes to the default handler
    (all the stock matching could find while no route is a pattern); addresses with
    patterns go through the stock matching. The handlers found are the same.
    """

    def __init__(self) -> None:
        super().__init__(strict_timing=False)
        self._exact: dict[str, list[Any]] = {}
        self._pattern_routes = False
        self._fallback: list[Any] = []

    def set_default_handler(self, handler: Callable, needs_reply_address: bool = False) -> None:
        super().set_default_handler(handler, needs_reply_address)
        self._fallback = [] if handler is None else [OscHandler(handler, [], needs_reply_address)]

    def map(self, address: str, handler: Callable, *args: Any, needs_reply_address: bool = False) -> Any:
        handler_obj = super().map(address, handler, *args, needs_reply_address=needs_reply_address)
        if _PATTERN_CHARS.intersection(address):
            self._pattern_routes = True
        else:
            self._exact.setdefault(address, []).append(handler_obj)
        return handler_obj

    def handlers_for_address(self, address_pattern: str) -> Any:
        exact = self._exact.get(address_pattern)
        if exact:
            yield from exact
        elif self._pattern_routes or _PATTERN_CHARS.intersection(address_pattern):
            yield from super().handlers_for_address(address_pattern)
        else:  # a plain address no route has: the default handler, as the stock matching finds too
            yield from self._fallback


class _UDPServer(BlockingOSCUDPServer):
    """python-osc's blocking UDP server with the allow-list and malformed counting."""

    owner: OSCServer

    def server_bind(self) -> None:
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        except OSError:
            pass
        super().server_bind()

    def verify_request(self, request: Any, client_address: Any) -> bool:
        counters = self.owner.counters
        counters.received += 1
        if not self.owner.allowed(client_address[0]):
            counters.ignored += 1
            return False
        try:
            packet = OscPacket(request[0])
        except Exception:  # ParseError, or anything a hostile datagram makes the parser raise
            counters.malformed += 1
            return False
        counters.messages += len(packet.messages)
        return True

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.owner.counters.handler_errors += 1
        log.exception("OSC message from %s failed", client_address)


class OSCServer:
    """UDP OSC server on ``host:port`` calling ``routes`` on its own thread.

    Args:
        host, port: where to listen (port 0 picks a free port; see :attr:`port`).
        routes: OSC address -> handler(address, args). Addresses may hold OSC
            wildcards on either side, as python-osc matches them.
        default: handler for messages no route matches (unknown addresses).
        allow: networks whose senders are served; None = loopback only.

    Raises:
        ConfigError: the port cannot be bound (in use, or not an address of this
            machine); the message names the fix.
    """

    def __init__(self, host: str, port: int, routes: dict[str, Handler], default: Handler,
                 allow: Iterable[IPNetwork] | None = None) -> None:
        self.counters = ServerCounters()
        self.allow = tuple(allow) if allow else LOOPBACK
        self.dispatcher = ExactFirstDispatcher()
        for address, handler in routes.items():
            self.dispatcher.map(address, _adapt(handler))
        self.dispatcher.set_default_handler(_adapt(default))
        try:
            self._server = _UDPServer((host, port), self.dispatcher)
        except OSError as exc:
            raise ConfigError(f"cannot listen for OSC on {host}:{port} ({exc.strerror or exc}); "
                              f"choose a free port with --osc-port or another --osc-host") from None
        self._server.owner = self
        self.host, self.port = self._server.server_address[:2]
        self._thread: threading.Thread | None = None
        self._allowed_cache: dict[str, bool] = {}

    def allowed(self, ip: str) -> bool:
        """True when a datagram from ``ip`` may be handled."""
        verdict = self._allowed_cache.get(ip)
        if verdict is None:
            try:
                addr = ipaddress.ip_address(ip)
                if getattr(addr, "ipv4_mapped", None):
                    addr = addr.ipv4_mapped
                verdict = any(addr in net for net in self.allow)
            except ValueError:
                verdict = False
            if len(self._allowed_cache) < 4096:  # bounded: a flood of spoofed sources cannot grow it
                self._allowed_cache[ip] = verdict
        return verdict

    def _serve(self) -> None:
        _lower_priority(NICE)
        self._server.serve_forever(poll_interval=0.1)

    def start(self) -> None:
        """Serve on a daemon thread ``bridge-osc-server``; returns at once."""
        self._thread = threading.Thread(target=self._serve, name="bridge-osc-server", daemon=True)
        self._thread.start()
        log.debug("OSC: listening on %s:%d", self.host, self.port)

    def stop(self) -> None:
        """Stop serving and close the socket (waits for the message being handled)."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(2.0)
        self._server.server_close()


def _lower_priority(step: int) -> None:
    """Raise the calling thread's niceness by ``step`` (Linux: per thread; elsewhere a no-op).

    Under CPU pressure (a flood of OSC on a busy machine) the scheduler then runs the
    stream's threads first; a message waits a little longer instead of a frame.
    """
    if step <= 0 or not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + step))
    except (AttributeError, OSError):
        pass


def _adapt(handler: Handler) -> Callable[..., None]:
    """python-osc calls ``f(address, *args)``; our handlers take ``(address, args)``."""

    def call(address: str, *args: Any) -> None:
        handler(address, args)

    return call
