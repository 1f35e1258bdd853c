"""Extension class of the avatar-bridge control COMP in TouchDesigner.

The build script puts this file in a Text DAT named ``AvatarBridgeExt`` (File + Sync to
File, so edits on disk are picked up) and sets the COMP's Extensions page to
``op('./AvatarBridgeExt').module.AvatarBridgeExt(me)`` with Promote on
(docs.derivative.ca/Extensions). The callback DATs call its promoted methods:

* Parameter Execute DAT -> ``OnParValueChange(par, prev)`` / ``OnParPulse(par)``: a
  panel change goes out through the OSC Out DAT's ``sendOSC(address, [value])``
  (the only way TouchDesigner sends a string, e.g. a prompt).
* OSC In DAT ``onReceiveOSC`` -> ``OnOSC(address, args)``: the daemon's status
  (``/bridge/status/*``), acknowledgements (``/bridge/ack/<stage>/<param> value``),
  errors and pong fill the Status page, the read-only ``...applied`` parameters, the
  ``acks`` table and the ``status_text`` Text TOP.
* CHOP Execute DAT on the MIDI CHOPs -> ``OnMidi(channel, value)``: the ``midi_map``
  table turns a controller into a panel value (MIDI learn writes new rows).
* Execute DAT ``onFrameStart`` -> ``Tick()``: daemon log into the ``daemon_log`` Text
  DAT, heartbeat watchdog, ``/bridge/ping`` while disconnected, re-sync after the daemon
  restarts, auto-restart of a daemon started from here. ``onExit`` -> ``Exit()``.

Everything that can fail (a missing operator, a bad MIDI row, a daemon that will not
start) ends up as one line in ``Lasterror`` and in the log; nothing raises into
TouchDesigner's frame loop. Only the main thread touches TouchDesigner objects: the
thread reading the daemon's output only appends to a deque.
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import sys
import threading
import time
from typing import Any, Callable

panel: Any = None  # avatar_bridge_panel, imported from the Tdfolder in __init__

#: Status addresses this COMP listens for (all sent by the daemon, see bridge/osc).
HEARTBEAT = "/bridge/status/heartbeat"
STATE = "/bridge/status/state"
FPS = "/bridge/status/fps"
LATENCY = "/bridge/status/latency_ms"
DROPPED = "/bridge/status/dropped"
STATUS_ERROR = "/bridge/status/error"
ERROR = "/bridge/error"
PONG = "/bridge/pong"
LISTENS_FOR = (HEARTBEAT, STATE, FPS, LATENCY, DROPPED, STATUS_ERROR, ERROR, PONG)

#: Names of the operators inside the COMP that this class drives.
OSC_OUT = "oscout"
LOG_DAT = "daemon_log"
ACKS_DAT = "acks"
MIDI_DAT = "midi_map"
STATUS_TOP = "status_text"
RECEIVERS = ("spout_from_daemon", "ndi_from_daemon")
WINDOW = "stage_window"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "")


def _import_panel(folder: str) -> Any:
    global panel
    if folder and folder not in sys.path:
        sys.path.insert(0, folder)
    import avatar_bridge_panel

    panel = avatar_bridge_panel
    return panel


class AvatarBridgeExt:
    """State and behaviour of the control COMP (one instance per COMP).

    ``clock`` returns seconds (monotonic); tests pass their own.
    """

    HEARTBEAT_TIMEOUT_S = 3.0  # the daemon beats at 1 Hz
    PING_EVERY_S = 2.0
    RESTART_DELAY_S = 2.0
    STOP_GRACE_S = 3.0
    LOG_LINES = 300

    def __init__(self, ownerComp: Any, clock: Callable[[], float] = time.monotonic):
        self.ownerComp = ownerComp
        self.clock = clock
        self.folder = self._str("Tdfolder") or os.path.dirname(os.path.abspath(globals().get("__file__", ".")))
        _import_panel(self.folder)
        self.specs: list[Any] = []
        self.by_name: dict[str, Any] = {}
        self.by_address: dict[str, Any] = {}
        self.sent: dict[str, list] = {}
        self.applied: dict[str, Any] = {}
        self.connected = False
        self.ever_connected = False
        self.last_seen: float | None = None
        self.last_ping = float("-inf")
        self.last_beat: int | None = None
        self.state = ""
        self.proc: subprocess.Popen | None = None
        self.log_queue: collections.deque[str] = collections.deque()
        self.log_lines: collections.deque[str] = collections.deque(maxlen=self.LOG_LINES)
        self.user_stopped = True
        self.restart_at: float | None = None
        self.kill_at: float | None = None
        self.scheduled: list[tuple[float, Callable[[], None]]] = []
        self.learn_target: Any = None
        self._midi_text: str | None = None
        self._midi_rows: list[Any] = []
        self._midi_last: dict[str, float] = {}
        self._status_shown = ""
        self.LoadSchema()
        self.ApplyTransport()

    # ------------------------------------------------------------------ helpers
    def _op(self, name: str) -> Any:
        try:
            return self.ownerComp.op(name)
        except Exception:
            return None

    def _par(self, name: str) -> Any:
        return getattr(self.ownerComp.par, name, None)

    def _get(self, name: str, default: Any = None) -> Any:
        par = self._par(name)
        return default if par is None else par.eval()

    def _str(self, name: str) -> str:
        value = self._get(name, "")
        return "" if value is None else str(value)

    def _set(self, name: str, value: Any) -> None:
        par = self._par(name)
        if par is not None and par.eval() != value:
            par.val = value

    def Log(self, line: str) -> None:
        """Append ``line`` to the ``daemon_log`` Text DAT (TouchDesigner-side messages start with [td])."""
        self.log_queue.append(line)

    def Error(self, message: str) -> None:
        """Show a one-line error on the panel (``Lasterror``), the status TOP and the log."""
        self._set("Lasterror", message)
        self.Log("[td] " + message)
        self._show_status()

    # ------------------------------------------------------------------ schema and panel
    def LoadSchema(self) -> None:
        """Read ``osc_schema.json`` and index the generated parameters by name and address."""
        try:
            entries = panel.read_schema(self.folder)
        except (OSError, ValueError) as exc:
            self.Error(f"cannot read {panel.SCHEMA_FILE} in {self.folder}: {exc} (set Tdfolder, then Rebuild panel)")
            entries = []
        fixed = [p.name for p in getattr(self.ownerComp, "customPars", [])
                 if getattr(getattr(p, "page", None), "name", None) in panel.FIXED_PAGES]
        self.specs = panel.specs_from_schema(entries, reserved=fixed)
        self.by_name = {s.name: s for s in self.specs}
        self.by_address = {s.address: s for s in self.specs}

    def RebuildPanel(self) -> None:
        """Re-create the schema pages from ``osc_schema.json`` (after ``git pull``)."""
        old_pages = {s.page for s in self.specs}
        self.LoadSchema()
        panel.remove_schema_pages(self.ownerComp, old_pages | {s.page for s in self.specs})
        panel.create_parameters(self.ownerComp, self.specs, self.Presets())
        self.UpdateMidiTargets()
        self.Log(f"[td] panel rebuilt: {len(self.specs)} parameters from {panel.SCHEMA_FILE}")

    def Presets(self) -> list[str]:
        """Preset names in the presets folder (``Presetsfolder``)."""
        return panel.list_presets(self._str("Presetsfolder"))

    def RefreshPresets(self) -> None:
        """Re-read the presets folder into the Preset menu."""
        spec = self.by_address.get(panel.PRESET)
        par = self._par(spec.name) if spec else None
        if par is None:
            return
        names = self.Presets()
        if not names:
            self.Error(f"no presets in {self._str('Presetsfolder')!r}: point Presets folder at avatar-bridge/presets")
            return
        current = par.eval()
        par.menuNames = names
        par.menuLabels = names
        if current not in names:
            par.val = panel.DEFAULT_PRESET if panel.DEFAULT_PRESET in names else names[0]

    def UpdateMidiTargets(self) -> None:
        """Fill the MIDI page's target menu with every parameter a controller can drive."""
        par = self._par("Miditarget")
        if par is None:
            return
        par.menuNames, par.menuLabels = panel.midi_targets(self.specs)

    # ------------------------------------------------------------------ sending
    def Send(self, spec: Any, value: Any = None) -> bool:
        """Send ``value`` for ``spec`` through the OSC Out DAT; returns True when sent."""
        oscout = self._op(OSC_OUT)
        if oscout is None:
            self.Error(f"no OSC Out DAT named {OSC_OUT!r} in {self.ownerComp.path}: rebuild the project")
            return False
        try:
            args = panel.osc_args(spec, value)
            oscout.sendOSC(spec.address, args)
        except Exception as exc:  # a bad value or a network error must not stop the show
            self.Error(f"could not send {spec.address}: {exc}")
            return False
        if spec.address == panel.PRESET:
            self.sent.clear()  # a preset replaces every stage parameter on the daemon
        if spec.kind != "pulse":
            self.sent.pop(spec.address, None)
            self.sent[spec.address] = args
        self._write_acks()
        return True

    def SendAddress(self, address: str, value: Any = None) -> bool:
        """Send to a schema address by name (``/bridge/reload`` ...)."""
        spec = self.by_address.get(address)
        if spec is None:
            self.Error(f"{address} is not in {panel.SCHEMA_FILE}: regenerate it and Rebuild panel")
            return False
        return self.Send(spec, value)

    def Ping(self) -> None:
        """``/bridge/ping``: the daemon answers ``/bridge/pong``."""
        oscout = self._op(OSC_OUT)
        if oscout is not None:
            try:
                oscout.sendOSC(panel.PING, [])
            except Exception as exc:
                self.Error(f"could not ping the daemon: {exc}")
        self.last_ping = self.clock()

    def Resync(self) -> None:
        """Push the preset, then every runtime parameter's current panel value."""
        preset = self.by_address.get(panel.PRESET)
        if preset is not None:
            self.Send(preset, self._get(preset.name))
        for spec in self.specs:
            if spec.kind in ("pulse",) or spec.load_time or spec.address in (panel.PRESET,):
                continue
            self.Send(spec, self._get(spec.name))

    def _resend_changes(self) -> None:
        """After a daemon restart: the preset, then what the performer changed since."""
        changes = list(self.sent.items())
        self.sent.clear()
        preset = self.by_address.get(panel.PRESET)
        if preset is not None and not any(a == panel.PRESET for a, _ in changes):
            changes.insert(0, (panel.PRESET, [self._get(preset.name)]))
        for address, args in changes:
            spec = self.by_address.get(address)
            if spec is not None:
                self.Send(spec, args[0] if args else None)
        self.Log(f"[td] re-sent {len(changes)} value(s) to the daemon")

    # ------------------------------------------------------------------ parameter callbacks
    def OnParValueChange(self, par: Any, prev: Any = None) -> None:
        """A panel parameter changed (Parameter Execute DAT)."""
        spec = self.by_name.get(par.name)
        if spec is not None and spec.kind != "pulse":
            self.Send(spec, par.eval())
        elif par.name == "Transport":
            self.ApplyTransport()
        elif par.name == "Midimapfile":
            self.LoadMidiMap()
        elif par.name == "Presetsfolder":
            self.RefreshPresets()

    def OnParPulse(self, par: Any) -> None:
        """A pulse parameter was pressed (Parameter Execute DAT)."""
        spec = self.by_name.get(par.name)
        if spec is not None:
            self.Send(spec)
            return
        actions = {
            "Start": self.StartDaemon,
            "Stop": self.StopDaemon,
            "Resync": self.Resync,
            "Rebuildpanel": self.RebuildPanel,
            "Refreshpresets": self.RefreshPresets,
            "Midilearn": self.MidiLearn,
            "Savemidimap": self.SaveMidiMap,
            "Loadmidimap": self.LoadMidiMap,
            "Openwindow": self.OpenWindow,
            "Clearlog": self.ClearLog,
        }
        action = actions.get(par.name)
        if action is not None:
            action()

    def ApplyTransport(self) -> None:
        """Turn the Spout or the NDI sender/receiver pair on (``Transport``) and the other off.

        Set as constants, not expressions, so re-opening a receiver after a reconnect
        (``active`` off, then on) leaves no expression overridden.
        """
        ndi = self._str("Transport") == "ndi"
        for name, on in (("spout_to_daemon", not ndi), ("spout_from_daemon", not ndi),
                         ("ndi_to_daemon", ndi), ("ndi_from_daemon", ndi)):
            o = self._op(name)
            active = getattr(o.par, "active", None) if o is not None else None
            if active is not None and active.eval() != on:
                active.val = on

    def OpenWindow(self) -> None:
        """Open the stage output window (Window COMP ``stage_window``)."""
        window = self._op(WINDOW)
        if window is None:
            self.Error(f"no Window COMP named {WINDOW!r}")
            return
        window.par.winopen.pulse()

    # ------------------------------------------------------------------ OSC from the daemon
    def OnOSC(self, address: str, args: Any) -> None:
        """One OSC message from the daemon (OSC In DAT callback)."""
        args = list(args or [])
        reconnected = self._alive()
        try:
            if address == HEARTBEAT:
                self._on_heartbeat(args, reconnected)
            elif address == STATE and args:
                self.state = str(args[0])
                self._set("State", self.state)
            elif address == FPS and args:
                self._set("Fps", round(float(args[0]), 2))
            elif address == LATENCY and args:
                self._set("Latencyms", round(float(args[0]), 1))
            elif address == DROPPED and args:
                self._set("Dropped", int(args[0]))
            elif address in (STATUS_ERROR, ERROR) and args:
                message = str(args[0])
                if message:
                    self._set("Lasterror", message)
                    self.Log("[daemon] " + message)
            elif address.startswith(panel.ACK_PREFIX):
                self._on_ack(address, args)
            # PONG and anything else: being alive is all it says
        except (TypeError, ValueError) as exc:
            self.Error(f"bad status message {address} {args!r}: {exc}")
        self._show_status()

    def _alive(self) -> bool:
        """Mark the daemon as heard from; True when this is a reconnection."""
        self.last_seen = self.clock()
        if self.connected:
            return False
        self.connected = True
        self._set("Connected", True)
        again = self.ever_connected
        self.ever_connected = True
        if again:
            self._on_reconnect("the daemon is back")
        else:
            self.Log("[td] connected to the daemon")
        return again

    def _on_heartbeat(self, args: list, reconnected: bool) -> None:
        beat = int(args[0]) if args else None
        if beat is not None and self.last_beat is not None and beat < self.last_beat and not reconnected:
            self._on_reconnect("the daemon restarted (heartbeat counter went back)")
        self.last_beat = beat

    def _on_reconnect(self, why: str) -> None:
        self.Log(f"[td] reconnect: {why}")
        if self._get("Resendonreconnect", True):
            self._resend_changes()
        for name in RECEIVERS:  # re-open the receivers so they pick up the new sender
            receiver = self._op(name)
            active = getattr(receiver.par, "active", None) if receiver is not None else None
            if active is not None and active.eval():
                active.val = False
                self.scheduled.append((self.clock() + 0.5, self.ApplyTransport))

    def _on_ack(self, address: str, args: list) -> None:
        target = panel.PREFIX + "/" + address[len(panel.ACK_PREFIX):]
        value = args[0] if args else None
        self.applied[target] = value
        spec = self.by_address.get(target)
        if spec is not None and spec.applied:
            self._set(spec.applied, panel.format_value(value))
        self._write_acks()

    def _write_acks(self) -> None:
        dat = self._op(ACKS_DAT)
        if dat is None:
            return
        rows = ["address\tsent\tapplied"]
        for address in sorted(set(self.sent) | set(self.applied)):
            sent = self.sent.get(address)
            rows.append("\t".join([
                address,
                panel.format_value(sent[0]) if sent else "",
                panel.format_value(self.applied[address]) if address in self.applied else "",
            ]))
        text = "\n".join(rows) + "\n"
        if dat.text != text:
            dat.text = text

    def StatusText(self) -> str:
        """The two lines the ``status_text`` Text TOP shows."""
        if not self.connected:
            first = "avatar-bridge: no heartbeat" + (" (daemon running)" if self.DaemonRunning() else "")
        else:
            first = "avatar-bridge: {}   {:.1f} fps   {:.0f} ms   dropped {}".format(
                (self.state or "?").upper(), float(self._get("Fps", 0) or 0),
                float(self._get("Latencyms", 0) or 0), self._get("Dropped", 0))
        error = self._str("Lasterror")
        return first + ("\nlast error: " + error if error else "")

    def _show_status(self) -> None:
        text = self.StatusText()
        if text == self._status_shown:
            return
        self._status_shown = text
        top = self._op(STATUS_TOP)
        if top is not None and getattr(top.par, "text", None) is not None:
            top.par.text = text

    # ------------------------------------------------------------------ MIDI
    def MidiRows(self) -> list[Any]:
        """The ``midi_map`` table's rows (parsed again only when the table changed)."""
        dat = self._op(MIDI_DAT)
        text = dat.text if dat is not None else ""
        if text != self._midi_text:
            self._midi_text = text
            self._midi_rows, problems = panel.parse_midi_map(text)
            for problem in problems:
                self.Error(problem)
            for row in self._midi_rows:
                if row.address not in self.by_address:
                    self.Error(f"MIDI map: {row.address} is not on the panel (row for {row.control})")
        return self._midi_rows

    def OnMidi(self, channel: str, value: float) -> None:
        """A MIDI CHOP channel changed: learn it, or drive the parameters mapped to it.

        A slider, toggle or menu parameter is set on the panel (the Parameter Execute DAT
        then sends it); a pulse (``/bridge/reload``) fires when a button goes down.
        """
        if self.learn_target is not None:
            self._learn(channel, value)
            return
        previous = self._midi_last.get(channel, 0.0)
        self._midi_last[channel] = value
        for row in self.MidiRows():
            if row.control != channel:
                continue
            spec = self.by_address.get(row.address)
            if spec is None:
                continue
            if spec.kind == "pulse":  # a button press (rising past half way) fires it once
                if value / row.inmax >= 0.5 > previous / row.inmax:
                    self.Send(spec)
                continue
            par = self._par(spec.name)
            if par is None:
                continue
            new = panel.midi_value(row, spec, value)
            if new is not None:
                par.val = new  # the Parameter Execute DAT sends it, as for a mouse change

    def MidiLearn(self) -> None:
        """Arm MIDI learn for the parameter picked in ``Miditarget``; the next control moved is mapped."""
        spec = self.by_name.get(self._str("Miditarget"))
        if spec is None or not (spec.numeric or spec.kind == "pulse"):
            self.Error("MIDI learn: pick a parameter in MIDI target first")
            return
        self.learn_target = spec
        self._set("Midistatus", f"move a knob, fader or button for {spec.page}: {spec.label}")

    def _learn(self, channel: str, value: float) -> None:
        spec, self.learn_target = self.learn_target, None
        rows = [r for r in self.MidiRows() if r.control != channel]
        rows.append(panel.MidiRow(control=channel, address=spec.address, inmax=127.0 if value > 1.0 else 1.0,
                                  note=f"learned {spec.page}: {spec.label}"))
        dat = self._op(MIDI_DAT)
        if dat is not None:
            dat.text = panel.format_midi_map(rows)
        self._set("Midistatus", f"{channel} -> {spec.page}: {spec.label} (Save MIDI map to keep it)")
        self.Log(f"[td] MIDI learn: {channel} -> {spec.address}")

    def LoadMidiMap(self) -> None:
        """Load ``Midimapfile`` (tab-separated) into the ``midi_map`` table."""
        path = self._str("Midimapfile")
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            self.Error(f"cannot read MIDI map {path!r}: {exc}")
            return
        dat = self._op(MIDI_DAT)
        if dat is not None:
            dat.text = text
        self.MidiRows()

    def SaveMidiMap(self) -> None:
        """Write the ``midi_map`` table back to ``Midimapfile``."""
        path = self._str("Midimapfile")
        rows = self.MidiRows()
        try:
            with open(path, "w", encoding="utf-8", newline="\n") as f:
                f.write(panel.format_midi_map(rows))
        except OSError as exc:
            self.Error(f"cannot write MIDI map {path!r}: {exc}")
            return
        self._set("Midistatus", f"saved {len(rows)} rows to {os.path.basename(path)}")

    # ------------------------------------------------------------------ daemon process
    def DaemonRunning(self) -> bool:
        """True while a daemon started from this COMP is running."""
        return self.proc is not None and self.proc.poll() is None

    def DaemonCommand(self) -> list[str]:
        """The daemon's argv from the Bridge and Daemon pages (see ``panel.daemon_command``)."""
        settings = panel.DaemonSettings(
            command=self._str("Daemoncmd"),
            transport=self._str("Transport") or "spout",
            sender=self._str("Sendername"),
            receiver=self._str("Receivername"),
            preset=self._str(self.by_address[panel.PRESET].name) if panel.PRESET in self.by_address else panel.DEFAULT_PRESET,
            device=self._str("Device"),
            extra=self._str("Daemonargs"),
            osc_args=["--osc-port", str(int(self._get("Sendport", 9000))),
                      "--osc-reply", f"127.0.0.1:{int(self._get('Receiveport', 9001))}"],
        )
        return panel.daemon_command(settings)

    def StartDaemon(self) -> None:
        """Start the daemon with the chosen preset and Spout/NDI names; its output goes to ``daemon_log``."""
        if self.DaemonRunning():
            self.Log("[td] the daemon is already running")
            return
        host = self._str("Host")
        if host not in LOCAL_HOSTS:
            self.Error(f"Start daemon runs it on this machine but Host is {host}: on that machine run "
                       "avatar-bridge run ... --osc-host 0.0.0.0 --osc-allow <this IP> --osc-reply <this IP>:"
                       f"{int(self._get('Receiveport', 9001))}")
            return
        try:
            argv = self.DaemonCommand()
        except ValueError as exc:
            self.Error(str(exc))
            return
        exe = argv[0]
        if shutil.which(exe) is None and not os.path.isfile(exe):
            self.Error(f"{exe!r} not found: set Daemon command to the full path of avatar-bridge "
                       "(.venv\\Scripts\\avatar-bridge.exe on Windows)")
            return
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0) if os.name == "nt" else 0
        workdir = os.path.dirname(self.folder.rstrip("/\\")) or None
        try:
            self.proc = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                text=True, encoding="utf-8", errors="replace", bufsize=1, env=env,
                cwd=workdir if workdir and os.path.isdir(workdir) else None, creationflags=flags,
            )
        except OSError as exc:
            self.Error(f"could not start the daemon: {exc}")
            return
        self.user_stopped = False
        self.restart_at = None
        self.Log("[td] started: " + " ".join(argv))
        reader = threading.Thread(target=self._read_output, args=(self.proc,), name="avatar-bridge-log", daemon=True)
        reader.start()
        self._set("Daemonrunning", True)

    def _read_output(self, proc: subprocess.Popen) -> None:
        """Reader thread: the daemon's lines into the queue (no TouchDesigner calls here)."""
        try:
            for line in proc.stdout:
                self.log_queue.append(line.rstrip("\r\n"))
        except (OSError, ValueError):
            pass

    def StopDaemon(self) -> None:
        """Stop the daemon started from here (terminate, then kill after a grace period)."""
        self.user_stopped = True
        self.restart_at = None
        if not self.DaemonRunning():
            self._set("Daemonrunning", False)
            return
        self.Log("[td] stopping the daemon")
        self.proc.terminate()
        self.kill_at = self.clock() + self.STOP_GRACE_S

    def ClearLog(self) -> None:
        """Empty the ``daemon_log`` Text DAT."""
        self.log_lines.clear()
        dat = self._op(LOG_DAT)
        if dat is not None:
            dat.text = ""

    def _drain_log(self) -> None:
        if not self.log_queue:
            return
        while self.log_queue:
            self.log_lines.append(self.log_queue.popleft())
        dat = self._op(LOG_DAT)
        if dat is not None:
            dat.text = "\n".join(self.log_lines) + "\n"

    def _watch_process(self, now: float) -> None:
        proc = self.proc
        if proc is None:
            return
        code = proc.poll()
        if code is None:
            if self.kill_at is not None and now >= self.kill_at:
                proc.kill()
                self.kill_at = None
            return
        self.proc = None
        self.kill_at = None
        self._set("Daemonrunning", False)
        if self.user_stopped:
            self.Log(f"[td] the daemon stopped (exit code {code})")
            return
        self.Error(f"the daemon exited with code {code}: see daemon_log")
        if self._get("Autorestart", False):
            self.restart_at = now + self.RESTART_DELAY_S
            self.Log(f"[td] restarting in {self.RESTART_DELAY_S:.0f} s (Auto restart is on)")

    # ------------------------------------------------------------------ frame loop
    def Tick(self) -> None:
        """Once per frame (Execute DAT): log, process, heartbeat, scheduled actions."""
        now = self.clock()
        try:
            self._watch_process(now)
            if self.restart_at is not None and now >= self.restart_at:
                self.restart_at = None
                self.StartDaemon()
            if self.connected and self.last_seen is not None and now - self.last_seen > self.HEARTBEAT_TIMEOUT_S:
                self.connected = False
                self._set("Connected", False)
                self._set("State", "no heartbeat")
                self.Log(f"[td] no heartbeat for {self.HEARTBEAT_TIMEOUT_S:.0f} s")
                self._show_status()
            if not self.connected and now - self.last_ping >= self.PING_EVERY_S:
                self.Ping()
            due = [s for s in self.scheduled if s[0] <= now]
            if due:
                self.scheduled = [s for s in self.scheduled if s[0] > now]
                for _, action in due:
                    action()
        except Exception as exc:  # never break TouchDesigner's frame loop
            self.Error(f"internal error in Tick: {exc!r}")
        self._drain_log()

    def Exit(self) -> None:
        """TouchDesigner is closing: stop a daemon started from here."""
        if self.DaemonRunning():
            self.user_stopped = True
            self.proc.terminate()
            try:
                self.proc.wait(timeout=self.STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
