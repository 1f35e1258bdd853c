"""Extension class of the avatar-bridge control COMP in TouchDesigner.

The build script puts this file in a Text DAT named ``AvatarBridgeExt`` (File + Sync to
File, so edits on disk are picked up) and sets the COMP's Extensions page to
``op('./AvatarBridgeExt').module.AvatarBridgeExt(me)`` with Promote on
(docs.derivative.ca/Extensions). The callback DATs call its promoted methods:

* Parameter Execute DAT -> ``OnParValueChange(par, prev)`` (once a frame) /
  ``OnParPulse(par)``: a panel change goes out through the OSC Out DAT's
  ``sendOSC(address, [value])`` (the only way TouchDesigner sends a string, e.g. a prompt).
* OSC In DAT ``onReceiveOSC`` -> ``OnOSC(address, args)``: the daemon's status
  (``/bridge/status/*``), acknowledgements (``/bridge/ack/<stage>/<param> value``),
  errors and pong fill the Status page, the ``status`` CHOP (fps, latency, dropped,
  state, connected: the COMP's CHOP output), the ``acks`` table and the ``status_text`` TOP.
* Script CHOP ``midi_scaled`` -> ``MidiCook(scriptOp)``: the ``midi_map`` table turns the
  MIDI channels into one channel per parameter, exported to it by ``midi_out``; CHOP
  Execute DAT -> ``OnMidi(channel, value)``: MIDI learn and buttons mapped to pulses.
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
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Callable

panel: Any = None  # avatar_bridge_panel, imported from the Folder in __init__

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
SPOUT_IN = "spout_from_daemon"
NDI_IN = "ndi_from_daemon"
STATUS_CHOP = "status"
MIDI_OUT = "midi_out"
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
        folder = self._str("Folder")
        self.folder = (os.path.normpath(os.path.join(self.ProjectFolder(), folder))
                       if folder and not os.path.isabs(folder) else folder) or os.path.dirname(
            os.path.abspath(globals().get("__file__", ".")))
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
        self._midi_skipped: set[str] = set()
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

    @staticmethod
    def ProjectFolder() -> str:
        """``project.folder`` (Project_Class): relative paths on the panel start there."""
        project = globals().get("project")
        return str(getattr(project, "folder", "") or "")

    def Path(self, name: str) -> str:
        """The file or folder parameter ``name`` as Python opens it (relative to ``project.folder``)."""
        return panel.resolve(self._str(name), self.ProjectFolder())

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
            self.Error(f"cannot read {panel.SCHEMA_FILE} in {self.folder}: {exc} (set Folder, then Rebuild panel)")
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
        """Preset names in the presets folder (``Presetsdir``)."""
        return panel.list_presets(self.Path("Presetsdir"))

    def RefreshPresets(self) -> None:
        """Re-read the presets folder into the Preset menu."""
        spec = self.by_address.get(panel.PRESET)
        par = self._par(spec.name) if spec else None
        if par is None:
            return
        names = self.Presets()
        if not names:
            self.Error(f"no presets in {self._str('Presetsdir')!r}: point Presets folder at avatar-bridge/presets")
            return
        current = par.eval()
        par.menuNames = names
        par.menuLabels = names
        if current not in names:
            par.val = panel.DEFAULT_PRESET if panel.DEFAULT_PRESET in names else names[0]

    def UpdateMidiTargets(self) -> None:
        """Fill the MIDI page's target menu with every parameter a controller can drive."""
        par = self._par("Learntarget")
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
        """Push the preset, then every value the performer changed since it (not the schema
        defaults of the rest: those would undo the preset, e.g. ``td-over``'s premultiplied alpha)."""
        self._resend_changes()

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
        elif par.name in ("Transport", "Ndisource", "Receiver", "Host"):
            self.ApplyTransport()
        elif par.name == "Midimap":
            self.LoadMidiMap()
        elif par.name == "Presetsdir":
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
            "Rebuild": self.RebuildPanel,
            "Refreshpresets": self.RefreshPresets,
            "Learn": self.MidiLearn,
            "Savemap": self.SaveMidiMap,
            "Loadmap": self.LoadMidiMap,
            "Open": self.OpenWindow,
            "Acks": self.ShowAcks,
            "Help": self.Help,
            "Clearlog": self.ClearLog,
        }
        action = actions.get(par.name)
        if action is not None:
            action()

    def ApplyTransport(self) -> None:
        """Turn the Spout or the NDI pair on (``Transport``) and the other off; name the NDI source.

        Spout Out and NDI Out/In have ``active``; the Syphon Spout In TOP has none (its
        page lists only ``usespoutactivesender`` and ``sendername``): the ``from_daemon``
        Switch cooks it only while it is selected. The NDI In TOP's Source Name is
        ``MACHINE (SourceName)`` (``panel.ndi_source_name``).
        """
        ndi = self._str("Transport") == "ndi"
        for name, on in (("spout_to_daemon", not ndi), ("ndi_to_daemon", ndi), (NDI_IN, ndi)):
            o = self._op(name)
            active = getattr(o.par, "active", None) if o is not None else None
            if active is not None and active.eval() != on:
                active.val = on
        ndi_in = self._op(NDI_IN)
        source = panel.ndi_source_name(self._str("Ndisource"), self._str("Receiver"), self._str("Host"),
                                       socket.gethostname())
        par = getattr(ndi_in.par, "name", None) if ndi_in is not None else None
        if par is not None and par.eval() != source:
            par.val = source
        if ndi and not source:
            self.Error("NDI: set NDI source to the daemon's 'MACHINE (AvatarBridge)' as the NDI In TOP lists it")

    def OpenWindow(self) -> None:
        """Open the stage output (Window COMP ``stage_window``) as the Perform window: the
        docs advise Perform mode, not a separate window, for final output (Window_COMP)."""
        window = self._op(WINDOW)
        pulse = getattr(window.par, "performance", None) if window is not None else None
        if pulse is None:
            self.Error(f"no Window COMP named {WINDOW!r} with Open as Perform Window")
            return
        pulse.pulse()

    def ShowAcks(self) -> None:
        """Open the ``acks`` table (address, sent, applied) in a viewer (OP.openViewer)."""
        dat = self._op(ACKS_DAT)
        if dat is not None and hasattr(dat, "openViewer"):
            dat.openViewer()

    def Help(self) -> None:
        """Open the README (``Docs`` on the About page) with the system viewer (ui.viewFile)."""
        ui = globals().get("ui")
        path = self.Path("Docs")
        if ui is None or not path:
            self.Error(f"help: open {path or 'touchdesigner/README.md'}")
            return
        ui.viewFile(path)

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
                self._set("Latency", round(float(args[0]), 1))
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
        if self._get("Resend", True):
            self._resend_changes()
        # Re-open the receiver so it picks up the restarted sender: the NDI In TOP is turned
        # off and on again; the Syphon Spout In TOP has no Active, it gets a forced cook.
        ndi_in = self._op(NDI_IN)
        active = getattr(ndi_in.par, "active", None) if ndi_in is not None else None
        if active is not None and active.eval():
            active.val = False
            self.scheduled.append((self.clock() + 0.5, self.ApplyTransport))
        spout_in = self._op(SPOUT_IN)
        if spout_in is not None and self._str("Transport") != "ndi" and hasattr(spout_in, "cook"):
            spout_in.cook(force=True)

    def _on_ack(self, address: str, args: list) -> None:
        target = panel.PREFIX + "/" + address[len(panel.ACK_PREFIX):]
        value = args[0] if args else None
        self.applied[target] = value
        self._set("Lastack", f"{target[len(panel.PREFIX) + 1:]} = {panel.format_value(value)}")
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
                float(self._get("Latency", 0) or 0), self._get("Dropped", 0))
        error = self._str("Lasterror")
        return first + ("\nlast error: " + error if error else "")

    def StatusChannels(self) -> dict[str, float]:
        """The ``status`` CHOP's channels: fps, latency (ms), dropped, state (``panel.STATE_CODES``:
        0 not connected, 1 starting, 2 loading, 3 live, 4 error), connected (0/1)."""
        state = self.state if self.connected else "not connected"
        return {"fps": float(self._get("Fps", 0) or 0), "latency": float(self._get("Latency", 0) or 0),
                "dropped": float(self._get("Dropped", 0) or 0), "state": float(panel.STATE_CODES.get(state, 0)),
                "connected": 1.0 if self.connected else 0.0}

    def _write_status_chop(self) -> None:
        chop = self._op(STATUS_CHOP)
        if chop is None:
            return
        values = self.StatusChannels()
        for i in range(len(values)):
            name_par = getattr(chop.par, f"const{i}name", None)
            value_par = getattr(chop.par, f"const{i}value", None)
            if name_par is None or value_par is None or name_par.eval() not in values:
                continue
            if value_par.eval() != values[name_par.eval()]:
                value_par.val = values[name_par.eval()]

    def _show_status(self) -> None:
        self._write_status_chop()
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
        """A MIDI CHOP channel changed (CHOP Execute DAT): learn it, or fire a pulse mapped to it.

        Sliders, toggles and menus are not written here: ``MidiCook`` makes their channels
        and ``midi_out`` exports them, TouchDesigner's own route, which leaves the
        parameter's mode to TouchDesigner. A pulse (``/bridge/reload``) fires when a button
        goes down (rises past half way).
        """
        if self.learn_target is not None:
            self._learn(channel, value)
            return
        previous = self._midi_last.get(channel, 0.0)
        self._midi_last[channel] = value
        for row in self.MidiRows():
            spec = self.by_address.get(row.address) if row.control == channel else None
            if spec is not None and spec.kind == "pulse" and value / row.inmax >= 0.5 > previous / row.inmax:
                par = self._par(spec.name)
                if par is not None:
                    par.pulse()  # the Parameter Execute DAT sends it, as for a click

    def MidiExportable(self, par: Any) -> bool:
        """True when MIDI may drive ``par``: constant mode, or already exported from ``midi_out``.

        A parameter the user bound, gave an expression or exported from another CHOP is
        left alone (Par.mode, Par.exportOP; Par_Class).
        """
        mode = getattr(par, "mode", None)
        name = getattr(mode, "name", str(mode)).rsplit(".", 1)[-1]
        if name == "CONSTANT":
            return True
        if name == "EXPORT":
            source = getattr(par, "exportOP", None)
            return source is not None and getattr(source, "name", "") == MIDI_OUT
        return False

    def MidiCook(self, script_op: Any) -> None:
        """Script CHOP ``onCook``: one channel ``<comp>:<Par>`` per mapped parameter, at the
        value the row scales its control to (``panel.midi_value``; toggles 0/1, menus the
        item index, as CHOP export reads them). Controls not seen yet make no channel, so a
        parameter keeps its own value until its control moves. Never raises into the cook:
        a failure is one line in ``Lasterror``."""
        try:
            self._midi_cook(script_op)
        except Exception as exc:
            self.Error(f"internal error in MIDI cook: {exc!r}")

    def _midi_cook(self, script_op: Any) -> None:
        inputs = getattr(script_op, "inputs", [])
        if not inputs:
            return
        values = {c.name: c.eval() for c in inputs[0].chans()}
        script_op.numSamples = 1  # one value per channel (ScriptCHOP_Class numSamples)
        made: set[str] = set()
        for row in self.MidiRows():
            spec = self.by_address.get(row.address)
            if spec is None or spec.kind == "pulse" or row.control not in values or spec.name in made:
                continue
            par = self._par(spec.name)
            if par is None:
                continue
            if not self.MidiExportable(par):
                if spec.name not in self._midi_skipped:
                    self._midi_skipped.add(spec.name)
                    self._set("Midistatus", f"{spec.name} has a bind, expression or export: MIDI leaves it alone")
                continue
            value = panel.midi_value(row, spec, values[row.control])
            if value is None:
                continue
            chan = script_op.appendChan(f"{self.ownerComp.name}:{spec.name}")
            chan.vals = [panel.channel_value(spec, value)]
            made.add(spec.name)

    def MidiLearn(self) -> None:
        """Arm MIDI learn for the parameter picked in ``Learntarget``; the next control moved is mapped."""
        spec = self.by_name.get(self._str("Learntarget"))
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
        """Load ``Midimap`` (tab-separated; relative to ``project.folder``) into the ``midi_map`` table."""
        path = self.Path("Midimap")
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
        """Write the ``midi_map`` table back to ``Midimap``."""
        path = self.Path("Midimap")
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
            command=self._str("Cmd"),
            transport=self._str("Transport") or "spout",
            sender=self._str("Sender"),
            receiver=self._str("Receiver"),
            preset=self._str(self.by_address[panel.PRESET].name) if panel.PRESET in self.by_address else panel.DEFAULT_PRESET,
            device=self._str("Device"),
            extra=self._str("Args"),
            osc_args=["--osc-port", str(int(self._get("Port", 9000))),
                      "--osc-reply", f"127.0.0.1:{int(self._get('Replyport', 9001))}"],
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
                       f"{int(self._get('Replyport', 9001))}")
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
