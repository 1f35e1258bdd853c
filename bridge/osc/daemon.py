"""``avatar-bridge run`` extension: the OSC control surface around a running engine.

Options added to ``run``: ``--osc-host`` (default 127.0.0.1), ``--osc-port`` (9000),
``--osc-reply HOST:PORT`` (127.0.0.1:9001), ``--osc-allow ADDR[,ADDR]`` and
``--no-osc``. Listening beyond loopback (``--osc-host 0.0.0.0`` or a LAN address)
is refused unless ``--osc-allow`` names the senders to serve; datagrams from any
other address are ignored and counted.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

from bridge.errors import ConfigError
from bridge.osc.controls import Controls
from bridge.osc.paths import PathPolicy
from bridge.osc.server import OSCServer, is_loopback_host, parse_allow
from bridge.osc.status import StatusSender

log = logging.getLogger("bridge.osc")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9000
DEFAULT_REPLY = "127.0.0.1:9001"


def parse_host_port(text: str, option: str = "--osc-reply") -> tuple[str, int]:
    """``"HOST:PORT"`` (``"[::1]:9001"`` for IPv6) -> ``(host, port)``.

    Raises:
        ConfigError: no port, or a port outside 1..65535.
    """
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{option} {text!r}: expected HOST:PORT with a port 1-65535, e.g. 127.0.0.1:9001")
    return host, int(port)


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Add the OSC options to ``avatar-bridge run``."""
    group = parser.add_argument_group("OSC control (TouchDesigner)")
    group.add_argument("--osc-host", default=DEFAULT_HOST, metavar="ADDR",
                       help="address to listen on (default 127.0.0.1; anything else needs --osc-allow)")
    group.add_argument("--osc-port", type=int, default=DEFAULT_PORT, metavar="PORT", help="UDP port to listen on (default 9000)")
    group.add_argument("--osc-reply", default=DEFAULT_REPLY, metavar="HOST:PORT",
                       help="where acks, errors and status go (default 127.0.0.1:9001)")
    group.add_argument("--osc-allow", default=None, metavar="ADDR[,ADDR]",
                       help="senders served (IP addresses or networks, e.g. 192.168.1.20,10.0.0.0/24); default: loopback only")
    group.add_argument("--allow-path", action="append", default=[], metavar="DIR",
                       help="a folder whose files OSC may point path parameters at (reference images, model folders), "
                            "besides the models and presets folders; repeatable")
    group.add_argument("--no-osc", action="store_true", help="no OSC control surface")


class OSCService:
    """The running OSC surface of one engine; calling it stops it.

    Attributes:
        server: the :class:`OSCServer` (``server.port`` is the bound port,
            ``server.counters`` what it saw).
        replies: the :class:`StatusSender` (acks, errors, heartbeat).
        controls: the :class:`Controls` (handlers).
    """

    def __init__(self, engine: Any, host: str, port: int, reply: tuple[str, int], allow: Any = None,
                 heartbeat_s: float = 1.0, allow_paths: Any = ()) -> None:
        self.engine = engine
        try:
            self.replies = StatusSender(reply[0], reply[1], lambda: engine.stats, self._counters, interval_s=heartbeat_s)
        except OSError as exc:
            raise ConfigError(f"--osc-reply {reply[0]}:{reply[1]}: cannot resolve the host ({exc}); give an IP address") from None
        self.controls = Controls(engine, self.replies, PathPolicy(allow_paths))
        try:
            self.server = OSCServer(host, port, self.controls.routes(), self.controls.unknown, allow)
        except ConfigError:
            self.replies.close()
            raise
        previous = engine.on_status

        def on_status(stats: Any) -> None:
            previous(stats)
            self.replies.notify(stats)

        engine.on_status = on_status
        self._stopped = False

    def _counters(self) -> dict[str, int]:
        counters = self.server.counters
        return {"malformed": counters.malformed, "ignored": counters.ignored, "coalesced": self.controls.coalesced}

    @property
    def port(self) -> int:
        """The UDP port the server listens on."""
        return int(self.server.port)

    def start(self) -> None:
        """Start the server thread and the 1 Hz status thread."""
        self.server.start()
        self.replies.start()
        log.debug("OSC: replies and status to %s:%d", *self.replies.address[:2])

    def __call__(self) -> None:
        """Stop: the server first (no new controls), then the status after a last send."""
        if self._stopped:
            return
        self._stopped = True
        self.server.stop()
        deadline = time.monotonic() + 1.0
        while self.engine.running and time.monotonic() < deadline:  # let "stopped" be the last state sent
            time.sleep(0.02)
        self.replies.stop()


def start_with_engine(engine: Any, args: argparse.Namespace) -> OSCService | None:
    """Start the OSC surface for ``engine`` as ``args`` say; None with ``--no-osc``.

    Returns:
        The running :class:`OSCService`; call it to stop.

    Raises:
        ConfigError: a non-loopback ``--osc-host`` without ``--osc-allow``, a bad
            ``--osc-allow``/``--osc-reply``, or a port that cannot be bound.
    """
    if getattr(args, "no_osc", False):
        return None
    host = getattr(args, "osc_host", DEFAULT_HOST)
    port = getattr(args, "osc_port", DEFAULT_PORT)
    if not 0 <= port < 65536:
        raise ConfigError(f"--osc-port {port}: use a port 1-65535")
    allow = parse_allow(getattr(args, "osc_allow", None))
    if not is_loopback_host(host) and allow is None:
        raise ConfigError(f"--osc-host {host} listens beyond this machine: add --osc-allow ADDR[,ADDR] naming the "
                          f"computers that may control the daemon (e.g. --osc-allow 192.168.1.20), or keep --osc-host 127.0.0.1")
    reply = parse_host_port(getattr(args, "osc_reply", DEFAULT_REPLY))
    allow_paths = []
    for folder in getattr(args, "allow_path", None) or []:
        path = Path(folder).expanduser()
        if not path.is_dir():
            raise ConfigError(f"--allow-path {folder}: not a folder; name an existing folder")
        allow_paths.append(path)
    service = OSCService(engine, host, port, reply, allow, allow_paths=allow_paths)
    service.start()
    return service
