"""A misbehaving OSC client in its own process (as TouchDesigner is), for the flood test.

Protocol (stdin/stdout, one line each):
1. prints ``{"reply_port": N}``: the daemon must send its replies to 127.0.0.1:N;
2. reads ``{"port": P, "malformed": [hex, ...], "wrong": [hex, ...], "total": N,
   "malformed_rate": R1, "wrong_rate": R2, "window_s": W}``;
3. sends ``total`` malformed datagrams, then ``total`` wrong messages, in flood windows
   of ``W`` seconds each followed by a quiet window as long; a malformed window ends
   with a ``/bridge/ping`` answered, a wrong window when every message got its
   ``/bridge/error``;
4. prints ``{"floods": [[t0, t1], ...], "quiets": [...], "errors": n, "acks": n,
   "heartbeats": [t, ...], "malformed_status": [n, ...], "t_start": t, "t_end": t}``
   (times: ``time.perf_counter()``, the system's monotonic clock, comparable with
   the test process on Linux).

Imports only the standard library and python-osc, so it starts in a fraction of a second.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import build_msg


class Replies:
    """Counts the daemon's replies on a thread."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.cond = threading.Condition()
        self.errors = self.acks = 0
        self.pongs: set = set()
        self.heartbeats: list[float] = []
        self.malformed: list[int] = []
        self.stop = False
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self.stop:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            msg = OscMessage(data)
            with self.cond:
                if msg.address == "/bridge/error":
                    self.errors += 1
                elif msg.address.startswith("/bridge/ack/"):
                    self.acks += 1
                elif msg.address == "/bridge/pong":
                    self.pongs.add(msg.params[0])
                elif msg.address == "/bridge/status/heartbeat":
                    self.heartbeats.append(time.perf_counter())
                elif msg.address == "/bridge/status/malformed":
                    self.malformed.append(msg.params[0])
                self.cond.notify_all()

    def wait(self, predicate, timeout: float = 60.0) -> bool:
        with self.cond:
            return self.cond.wait_for(predicate, timeout)


def send_window(sock: socket.socket, target: tuple, dgrams: list[bytes], start: int, count: int, rate: int) -> None:
    """Datagrams ``start .. start+count-1`` (cycling ``dgrams``) at ``rate`` per second, in 5 ms slices."""
    t0 = time.perf_counter()
    per_slice = max(1, rate // 200)
    for k in range(count):
        if k % per_slice == 0:
            delay = t0 + k / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        sock.sendto(dgrams[(start + k) % len(dgrams)], target)


def main() -> int:
    replies = Replies()
    print(json.dumps({"reply_port": replies.sock.getsockname()[1]}), flush=True)
    job = json.loads(sys.stdin.readline())
    target = ("127.0.0.1", job["port"])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    window = job["window_s"]
    floods, quiets = [], []
    t_start = time.perf_counter()
    ping = 0
    for kind, rate in (("malformed", job["malformed_rate"]), ("wrong", job["wrong_rate"])):
        dgrams = [bytes.fromhex(h) for h in job[kind]]
        sent = 0
        errors_before = replies.errors
        while sent < job["total"]:
            n = min(int(rate * window), job["total"] - sent)
            t0 = time.perf_counter()
            send_window(sock, target, dgrams, sent, n, rate)
            sent += n
            if kind == "malformed":  # no reply to count: a ping after them proves they were handled
                ping += 1
                sock.sendto(build_msg("/bridge/ping", [ping]).dgram, target)
                answered = replies.wait(lambda p=ping: p in replies.pongs)
            else:
                answered = replies.wait(lambda s=sent: replies.errors - errors_before >= s)
            if not answered:
                print(json.dumps({"stuck": f"{kind}: no answer after {sent} datagrams", "errors": replies.errors}), flush=True)
                return 1
            t1 = time.perf_counter()
            time.sleep(window)
            floods.append([t0, t1])
            quiets.append([t1, time.perf_counter()])
    t_end = time.perf_counter()
    # one more heartbeat (1 s period) and the final malformed count, however long a loaded machine takes
    replies.wait(lambda: any(t > t_end for t in replies.heartbeats))
    replies.wait(lambda: bool(replies.malformed) and replies.malformed[-1] >= job["total"])
    replies.stop = True
    print(json.dumps({"floods": floods, "quiets": quiets, "errors": replies.errors, "acks": replies.acks,
                      "heartbeats": replies.heartbeats, "malformed_status": replies.malformed,
                      "t_start": t_start, "t_end": t_end}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
