"""Build the avatar-bridge operator (one COMP) with TouchDesigner's Python API and save it as a .tox.

Paste this one line into TouchDesigner's Textport (Dialogs > Textport and DATs), with
your checkout's path::

    import runpy; runpy.run_path(r'C:\\path\\to\\avatar-bridge\\touchdesigner\\build_avatar_bridge.py', run_name='__main__')

It builds ``/project1/avatar_bridge`` and saves it as ``touchdesigner/AvatarBridge.tox``
(drag that file into any project afterwards). The new COMP is built under a free name
first; only when every step has run does it replace an older ``avatar_bridge`` (whose
daemon it stops) and take its name, so a build that fails half-way leaves the old COMP
as it was and no half-built one. It never saves the ``.toe`` (``project.save`` may ask
before overwriting, Project_Class): save your project yourself. It prints what it built
and every operator type, parameter name or menu item this TouchDesigner build refused
(reported and skipped, never fatal). The ``.tox`` is TouchDesigner's binary file: not in
git; this script and the ``.py`` files the COMP loads from disk are.

The operator::

    input 0 (in1, any TOP; the camera when nothing is wired)
      -> source (Switch: camera | in1) -> to_daemon_fit (Fit, Inw x Inh, rgba8fixed) -> to_daemon (Null)
      -> spout_to_daemon (Syphon Spout Out) / ndi_to_daemon (NDI Out)          [Transport]
    [daemon]
    spout_from_daemon (Syphon Spout In) / ndi_from_daemon (NDI In) -> from_daemon (Switch)
      -> avatar (Null) -> out1 (output 0: the RGBA avatar)
    input 1 (in2) / bg_movie / bg_color -> background (Switch)
    from_daemon over background -> composite (Over, Outw x Outh) -> out (Null) -> out2 (output 1),
      obs_out (Syphon Spout Out), stage_window (Window COMP, opened as the Perform window)
    status (Constant CHOP: fps latency dropped state connected) -> out3 (output 2, CHOP)
    MIDI: midi_device (MIDI In Map CHOP, Device Mapper ID) + midi_direct (MIDI In CHOP, same ID)
      -> midi_merge (Merge) -> midi_scaled (Script CHOP: the midi_map table)
      -> midi_out (Null CHOP, exports "<comp>:<Par>" channels to the COMP's parameters)
      and midi_exec (CHOP Execute: MIDI learn, pulses)
    oscout / oscin (+ osc_in_callbacks) / panel_exec / frame_exec / daemon_log / acks / param_map

Every operator type and parameter name set here is in the table in
``touchdesigner/README.md`` with the documentation page it was checked on;
``tests/fakes/td.py`` holds the same pages' parameter lists.
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(globals().get("__file__") or "build_avatar_bridge.py"))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import avatar_bridge_panel as panel  # noqa: E402

DOC = "https://docs.derivative.ca/"
#: The User Guide page of every operator type the build creates.
DOCS = {
    "baseCOMP": "Base_COMP", "windowCOMP": "Window_COMP", "videodeviceinTOP": "Video_Device_In_TOP",
    "fitTOP": "Fit_TOP", "nullTOP": "Null_TOP", "syphonspoutoutTOP": "Syphon_Spout_Out_TOP",
    "syphonspoutinTOP": "Syphon_Spout_In_TOP", "ndioutTOP": "NDI_Out_TOP", "ndiinTOP": "NDI_In_TOP",
    "switchTOP": "Switch_TOP", "moviefileinTOP": "Movie_File_In_TOP", "constantTOP": "Constant_TOP",
    "inTOP": "In_TOP", "outTOP": "Out_TOP", "overTOP": "Over_TOP", "textTOP": "Text_TOP",
    "oscoutDAT": "OSC_Out_DAT", "oscinDAT": "OSC_In_DAT", "parameterexecuteDAT": "Parameter_Execute_DAT",
    "executeDAT": "Execute_DAT", "chopexecuteDAT": "CHOP_Execute_DAT", "textDAT": "Text_DAT",
    "tableDAT": "Table_DAT", "midiinmapCHOP": "MIDI_In_Map_CHOP", "midiinCHOP": "MIDI_In_CHOP",
    "mergeCHOP": "Merge_CHOP", "scriptCHOP": "Script_CHOP", "nullCHOP": "Null_CHOP",
    "constantCHOP": "Constant_CHOP", "outCHOP": "Out_CHOP",
}

COMP_NAME = "avatar_bridge"
EXT_NAME = "AvatarBridgeExt"
TOX_FILE = "AvatarBridge.tox"
README = "README.md"
MIDI_SAMPLE = "midi_map_nanokontrol2.tsv"
#: The .py files the COMP's DATs load from disk (File + Sync to File).
DAT_FILES = {
    EXT_NAME: "avatar_bridge_ext.py",
    "osc_in_callbacks": "osc_in_callbacks.py",
    "panel_exec": "parexec_callbacks.py",
    "frame_exec": "frame_callbacks.py",
    "midi_exec": "midi_callbacks.py",
    "midi_scale_callbacks": "midi_scale_callbacks.py",
}
#: Status CHOP channels (Constant CHOP ``status``, COMP output 2), in this order.
STATUS_CHANNELS = ("fps", "latency", "dropped", "state", "connected")
P = "parent().par."  # expressions inside the COMP read its custom parameters


def _page(token: str) -> str:
    return DOC + DOCS.get(token, "")


class Builder:
    """Creates operators and sets parameters without ever stopping on a missing name.

    Every operator type token or parameter this TouchDesigner build lacks, and every
    value it refuses, is added to ``missing`` (with the docs page to check) and skipped.
    """

    def __init__(self, td, folder: str):
        self.td = td
        self.folder = folder
        self.missing: list[str] = []
        self.tokens: dict[int, str] = {}

    def create(self, parent, token: str, name: str, x: int, y: int):
        """``parent.create(<token>, name)`` at grid cell (x, y); None if the type is missing."""
        optype = getattr(self.td, token, None)
        if optype is None:
            self.missing.append(f"operator type {token} (see {_page(token)})")
            return None
        try:
            o = parent.create(optype, name)
        except Exception as exc:
            self.missing.append(f"cannot create {token} {name!r}: {exc}")
            return None
        o.nodeX, o.nodeY = x * 200, -y * 150
        self.tokens[id(o)] = token
        return o

    def set(self, o, name: str, value, expr: bool = False) -> bool:
        """``o.par.<name> = value`` (``.expr`` when ``expr``); False, and reported, when it fails."""
        if o is None:
            return False
        par = getattr(o.par, name, None)
        token = self.tokens.get(id(o), "?")
        if par is None:
            self.missing.append(f"{token}.par.{name} on {o.path} (see {_page(token)})")
            return False
        try:
            if expr:
                par.expr = value
            else:
                par.val = value
        except Exception as exc:
            self.missing.append(f"{token}.par.{name} = {value!r} refused on {o.path}: {exc} (see {_page(token)})")
            return False
        return True

    def connect(self, src, dst, index: int = 0) -> None:
        """Wire ``src``'s first output into input ``index`` of ``dst`` (Connector.connect)."""
        if src is None or dst is None:
            return
        try:
            inputs = dst.inputConnectors
            if index < len(inputs):
                src.outputConnectors[0].connect(inputs[index])
            else:  # a multi-input operator grows a new connector: connecting to the OP fills it
                src.outputConnectors[0].connect(dst)
        except Exception as exc:
            self.missing.append(f"cannot wire {src.path} -> {dst.path} input {index}: {exc}")

    def load_dat(self, dat, filename: str) -> None:
        """Point a DAT at ``<Folder>/<filename>`` (File + Sync to File) and load its text now."""
        if dat is None:
            return
        with open(os.path.join(self.folder, filename), encoding="utf-8") as f:
            dat.text = f.read()
        # File page of Text/Table/Execute DATs: file, syncfile. A relative Folder is resolved
        # against project.folder by TouchDesigner, as every file parameter is.
        self.set(dat, "file", P + "Folder.eval() + '/" + filename + "'", expr=True)
        self.set(dat, "syncfile", True)


# --------------------------------------------------------------------------- custom parameters

STATUS_PARS = ["Connected", "State", "Fps", "Latency", "Dropped", "Lasterror", "Lastack", "Daemonrunning",
               "Open", "Acks", "Resync"]
BRIDGE_PARS = ["Folder", "Presetsdir", "Host", "Port", "Replyport", "Transport", "Sender", "Receiver",
               "Obssender", "Ndisource", "Ndiips", "Source", "Inw", "Inh", "Outw", "Outh", "Background",
               "Bgfile", "Bgcolorr", "Bgcolorg", "Bgcolorb"]
DAEMON_PARS = ["Cmd", "Device", "Args", "Autorestart", "Resend", "Start", "Stop", "Clearlog", "Rebuild",
               "Refreshpresets"]
MIDI_PARS = ["Midimap", "Mididevice", "Learntarget", "Learn", "Midistatus", "Savemap", "Loadmap"]
ABOUT_PARS = ["Version", "Help", "Docs"]
FIXED_PARS = STATUS_PARS + BRIDGE_PARS + DAEMON_PARS + MIDI_PARS + ABOUT_PARS


def _menu(page, name, label, items, labels=None, default=None):
    par = page.appendMenu(name, label=label)[0]
    par.menuNames = items
    par.menuLabels = labels or items
    par.default = par.val = default if default is not None else items[0]
    return par


def _value(group, value, readonly=False, help_text=""):
    par = group[0]
    par.default = par.val = value
    if readonly:
        par.readOnly = True
    panel.set_help(par, help_text)
    return par


def add_fixed_pages(comp, folder: str, project_folder: str) -> dict[str, object]:
    """The hand-made pages (Status, Bridge, Daemon, MIDI, About). Paths are relative to
    ``project_folder`` when they lie inside it. Returns ``{page name: Page}``."""
    repo = os.path.dirname(folder)
    rel = lambda path: panel.relative_to(path, project_folder)  # noqa: E731
    pages = {}
    s = pages["Status"] = comp.appendCustomPage("Status")
    _value(s.appendToggle("Connected", label="Connected"), False, readonly=True)
    _value(s.appendStr("State", label="State"), "not connected", readonly=True)
    _value(s.appendFloat("Fps", label="FPS"), 0.0, readonly=True)
    _value(s.appendFloat("Latency", label="Latency (ms)"), 0.0, readonly=True)
    _value(s.appendInt("Dropped", label="Dropped frames"), 0, readonly=True)
    _value(s.appendStr("Lasterror", label="Last error"), "", readonly=True)
    _value(s.appendStr("Lastack", label="Last applied"), "", readonly=True,
           help_text="The last value the daemon acknowledged; every one is in the acks table (Acks).")
    _value(s.appendToggle("Daemonrunning", label="Daemon started here"), False, readonly=True)
    s.appendPulse("Open", label="Open stage (Perform)")
    s.appendPulse("Acks", label="Applied values table")
    s.appendPulse("Resync", label="Send changes again")

    b = pages["Bridge"] = comp.appendCustomPage("Bridge")
    _value(b.appendFolder("Folder", label="touchdesigner folder"), rel(folder))
    _value(b.appendFolder("Presetsdir", label="Presets folder"), rel(os.path.join(repo, "presets")))
    _value(b.appendStr("Host", label="Daemon host"), "127.0.0.1")
    _value(b.appendInt("Port", label="Daemon OSC port"), 9000)
    _value(b.appendInt("Replyport", label="Status port (here)"), 9001)
    _menu(b, "Transport", "Video transport", ["spout", "ndi"], ["Spout / Syphon (this machine)", "NDI (network)"])
    _value(b.appendStr("Sender", label="Camera sender name"), "TDOut")
    _value(b.appendStr("Receiver", label="Avatar sender name"), "AvatarBridge")
    _value(b.appendStr("Obssender", label="Output sender (OBS)"), "AvatarBridgeOBS")
    _value(b.appendStr("Ndisource", label="NDI source"), "",
           help_text="MACHINE (SourceName) as the NDI In TOP lists it; empty = <this machine> (Avatar sender name)")
    _value(b.appendStr("Ndiips", label="NDI extra IPs"), "")
    _menu(b, "Source", "Source", ["auto", "camera", "input"],
          ["Input 0 when wired, else camera", "Camera", "Input 0"])
    _value(b.appendInt("Inw", label="Daemon input width"), 512)
    _value(b.appendInt("Inh", label="Daemon input height"), 512)
    _value(b.appendInt("Outw", label="Composite width"), 1920)
    _value(b.appendInt("Outh", label="Composite height"), 1080)
    _menu(b, "Background", "Background", ["movie", "color", "input"], ["Movie file", "Colour", "Input 1"])
    _value(b.appendFile("Bgfile", label="Background movie"), "")
    for par, v in zip(b.appendRGB("Bgcolor", label="Background colour"), (0.05, 0.05, 0.08)):
        par.default = par.val = v

    d = pages["Daemon"] = comp.appendCustomPage("Daemon")
    _value(d.appendStr("Cmd", label="Daemon command"), "avatar-bridge")
    _menu(d, "Device", "Torch device", ["cuda", "cpu", "mps"])
    _value(d.appendStr("Args", label="Extra arguments"), "")
    _value(d.appendToggle("Autorestart", label="Auto restart"), True)
    _value(d.appendToggle("Resend", label="Re-send changes on reconnect"), True)
    d.appendPulse("Start", label="Start daemon")
    d.appendPulse("Stop", label="Stop daemon")
    d.appendPulse("Clearlog", label="Clear log")
    d.appendPulse("Rebuild", label="Rebuild panel from schema")
    d.appendPulse("Refreshpresets", label="Refresh presets")

    m = pages["MIDI"] = comp.appendCustomPage("MIDI")
    _value(m.appendFile("Midimap", label="MIDI map file"), rel(os.path.join(folder, MIDI_SAMPLE)))
    _value(m.appendInt("Mididevice", label="Device Mapper ID"), 1)
    _menu(m, "Learntarget", "MIDI learn target", ["none"])
    m.appendPulse("Learn", label="MIDI learn")
    _value(m.appendStr("Midistatus", label="MIDI status"), "", readonly=True)
    m.appendPulse("Savemap", label="Save MIDI map")
    m.appendPulse("Loadmap", label="Load MIDI map")

    a = pages["About"] = comp.appendCustomPage("About")
    _value(a.appendStr("Version", label="Version"), panel.read_version(repo), readonly=True)
    a.appendPulse("Help", label="Help (README)")
    _value(a.appendStr("Docs", label="Documentation"), rel(os.path.join(folder, README)), readonly=True)
    return pages


# --------------------------------------------------------------------------- network


def build_network(b: Builder, comp) -> dict[str, object]:
    """Create and wire every operator inside ``comp``; returns them by name."""
    o = {}

    # --- input 0 (or the camera) -> daemon ---------------------------------------------
    # Video Device In TOP (Video In page): active; driver and device left to the user.
    o["camera"] = b.create(comp, "videodeviceinTOP", "camera", 0, 0)
    b.set(o["camera"], "active", True)
    # In TOP: the COMP's inputs, "positioned alphanumerically": in1 = input 0, in2 = input 1.
    o["in1"] = b.create(comp, "inTOP", "in1", 0, 1)
    b.set(o["in1"], "label", "Source (any TOP; the camera when unwired)")
    # Switch TOP (Switch page): index. Input 0 when wired (Connector.connections), else the camera.
    o["source"] = b.create(comp, "switchTOP", "source", 1, 0)
    b.set(o["source"], "index", "{'camera': 0, 'input': 1}.get(" + P + "Source.eval(), "
          "1 if parent().inputConnectors and parent().inputConnectors[0].connections else 0)", expr=True)
    b.connect(o["camera"], o["source"], 0)
    b.connect(o["in1"], o["source"], 1)
    # Fit TOP (Fit page): fit = fitoutside; Common page: outputresolution = custom,
    # resolutionw/resolutionh, format = rgba8fixed (8-bit RGBA, what the daemon reads).
    o["to_daemon_fit"] = b.create(comp, "fitTOP", "to_daemon_fit", 2, 0)
    b.set(o["to_daemon_fit"], "fit", "fitoutside")
    b.set(o["to_daemon_fit"], "outputresolution", "custom")
    b.set(o["to_daemon_fit"], "resolutionw", P + "Inw", expr=True)
    b.set(o["to_daemon_fit"], "resolutionh", P + "Inh", expr=True)
    b.set(o["to_daemon_fit"], "format", "rgba8fixed")
    b.connect(o["source"], o["to_daemon_fit"])
    o["to_daemon"] = b.create(comp, "nullTOP", "to_daemon", 3, 0)
    b.connect(o["to_daemon_fit"], o["to_daemon"])
    # Syphon Spout Out TOP (Syphon Spout Out page): active, sendername.
    o["spout_to_daemon"] = b.create(comp, "syphonspoutoutTOP", "spout_to_daemon", 4, 0)
    b.set(o["spout_to_daemon"], "sendername", P + "Sender", expr=True)
    b.set(o["spout_to_daemon"], "active", True)  # the extension switches Spout/NDI (Transport)
    # NDI Out TOP (NDI Out page): active, name (Source Name), includealpha.
    o["ndi_to_daemon"] = b.create(comp, "ndioutTOP", "ndi_to_daemon", 4, 1)
    b.set(o["ndi_to_daemon"], "name", P + "Sender", expr=True)
    b.set(o["ndi_to_daemon"], "active", False)
    b.connect(o["to_daemon"], o["spout_to_daemon"])
    b.connect(o["to_daemon"], o["ndi_to_daemon"])

    # --- daemon -> output 0 (avatar) --------------------------------------------------------
    # Syphon Spout In TOP (Syphon Spout In page): sendername (it has no Active parameter:
    # the Switch only cooks it while Transport = spout).
    o["spout_from_daemon"] = b.create(comp, "syphonspoutinTOP", "spout_from_daemon", 0, 3)
    b.set(o["spout_from_daemon"], "sendername", P + "Receiver", expr=True)
    # NDI In TOP (NDI In page): active, name (Source Name, "MACHINE (SourceName)", set by
    # the extension), extraips (space-separated).
    o["ndi_from_daemon"] = b.create(comp, "ndiinTOP", "ndi_from_daemon", 0, 4)
    b.set(o["ndi_from_daemon"], "extraips", P + "Ndiips", expr=True)
    b.set(o["ndi_from_daemon"], "active", False)
    o["from_daemon"] = b.create(comp, "switchTOP", "from_daemon", 1, 3)
    b.set(o["from_daemon"], "index", P + "Transport.menuIndex", expr=True)
    b.connect(o["spout_from_daemon"], o["from_daemon"], 0)
    b.connect(o["ndi_from_daemon"], o["from_daemon"], 1)
    o["avatar"] = b.create(comp, "nullTOP", "avatar", 2, 2)
    b.connect(o["from_daemon"], o["avatar"])
    # Out TOP (Out page): label. out1 = output 0, out2 = output 1, out3 = output 2 (alphanumeric).
    o["out1"] = b.create(comp, "outTOP", "out1", 6, 2)
    b.set(o["out1"], "label", "Avatar (RGBA, premultiplied with td-over)")
    b.connect(o["avatar"], o["out1"])

    # --- background and composite -> output 1 ----------------------------------------------
    # Movie File In TOP (Play page): file. Constant TOP (Constant page): colorr/g/b, alpha.
    o["bg_movie"] = b.create(comp, "moviefileinTOP", "bg_movie", 0, 6)
    b.set(o["bg_movie"], "file", P + "Bgfile", expr=True)
    o["bg_color"] = b.create(comp, "constantTOP", "bg_color", 0, 7)
    for ch in "rgb":
        b.set(o["bg_color"], "color" + ch, P + "Bgcolor" + ch, expr=True)
    b.set(o["bg_color"], "alpha", 1.0)
    o["in2"] = b.create(comp, "inTOP", "in2", 0, 8)
    b.set(o["in2"], "label", "Background (any TOP; Background = Input 1)")
    o["background"] = b.create(comp, "switchTOP", "background", 1, 6)
    b.set(o["background"], "index", P + "Background.menuIndex", expr=True)
    b.connect(o["bg_movie"], o["background"], 0)
    b.connect(o["bg_color"], o["background"], 1)
    b.connect(o["in2"], o["background"], 2)
    # Over TOP: input 0 (the avatar, premultiplied) over input 1. Transform page: size,
    # prefit = fitbest (the background fills the frame); Common page: outputresolution =
    # custom at Outw x Outh, so the stage/OBS output has that size whatever the background.
    o["composite"] = b.create(comp, "overTOP", "composite", 3, 3)
    b.set(o["composite"], "size", "input2")
    b.set(o["composite"], "prefit", "fitbest")
    b.set(o["composite"], "outputresolution", "custom")
    b.set(o["composite"], "resolutionw", P + "Outw", expr=True)
    b.set(o["composite"], "resolutionh", P + "Outh", expr=True)
    b.connect(o["from_daemon"], o["composite"], 0)
    b.connect(o["background"], o["composite"], 1)
    o["out"] = b.create(comp, "nullTOP", "out", 4, 3)
    b.connect(o["composite"], o["out"])
    o["out2"] = b.create(comp, "outTOP", "out2", 6, 3)
    b.set(o["out2"], "label", "Composite over the background")
    b.connect(o["out"], o["out2"])
    o["obs_out"] = b.create(comp, "syphonspoutoutTOP", "obs_out", 5, 4)
    b.set(o["obs_out"], "sendername", P + "Obssender", expr=True)
    b.connect(o["out"], o["obs_out"])
    # Window COMP (Window page): winop, size = custom (winw/winh only apply then), winw,
    # winh; opened with performance ("Open as Perform Window"; the docs advise Perform mode,
    # not a separate window, for final output).
    o["stage_window"] = b.create(comp, "windowCOMP", "stage_window", 5, 2)
    if o["out"] is not None:
        b.set(o["stage_window"], "winop", o["out"].path)
    b.set(o["stage_window"], "size", "custom")
    b.set(o["stage_window"], "winw", P + "Outw", expr=True)
    b.set(o["stage_window"], "winh", P + "Outh", expr=True)
    # Text TOP (Text page): text (the extension writes state, fps, latency, last error).
    o["status_text"] = b.create(comp, "textTOP", "status_text", 4, 5)
    b.set(o["status_text"], "text", "avatar-bridge: not connected")

    # --- status as CHOP channels -> output 2 ------------------------------------------------
    # Constant CHOP (Constant page): const<i>name / const<i>value, a sequence
    # (seq.const.numBlocks, Sequence_Class); the extension writes the values.
    o["status"] = b.create(comp, "constantCHOP", "status", 4, 7)
    if o["status"] is not None:
        try:
            o["status"].seq.const.numBlocks = len(STATUS_CHANNELS)
        except Exception as exc:
            b.missing.append(f"constantCHOP seq.const.numBlocks refused: {exc} (see {DOC}Sequence_Class)")
        for i, name in enumerate(STATUS_CHANNELS):
            b.set(o["status"], f"const{i}name", name)
            b.set(o["status"], f"const{i}value", 0.0)
    o["out3"] = b.create(comp, "outCHOP", "out3", 6, 7)
    b.set(o["out3"], "label", "Status: " + " ".join(STATUS_CHANNELS))
    b.connect(o["status"], o["out3"])

    # --- control: OSC, panel, frame loop -----------------------------------------------
    # OSC Out DAT (OSC page): address, port; sendOSC(address, [values]) sends.
    o["oscout"] = b.create(comp, "oscoutDAT", "oscout", 0, 10)
    b.set(o["oscout"], "address", P + "Host", expr=True)
    b.set(o["oscout"], "port", P + "Port", expr=True)
    # OSC In DAT (OSC page): port, callbacks (a DAT with onReceiveOSC).
    o["osc_in_callbacks"] = b.create(comp, "textDAT", "osc_in_callbacks", 2, 11)
    b.load_dat(o["osc_in_callbacks"], DAT_FILES["osc_in_callbacks"])
    o["oscin"] = b.create(comp, "oscinDAT", "oscin", 1, 10)
    b.set(o["oscin"], "port", P + "Replyport", expr=True)
    b.set(o["oscin"], "callbacks", "osc_in_callbacks")
    # Parameter Execute DAT (Parameter Execute page): op, pars, custom, builtin,
    # valuechange (once a frame), onpulse.
    o["panel_exec"] = b.create(comp, "parameterexecuteDAT", "panel_exec", 2, 10)
    b.load_dat(o["panel_exec"], DAT_FILES["panel_exec"])
    for name, value in (("op", ".."), ("pars", "*"), ("custom", True), ("builtin", False),
                        ("valuechange", True), ("onpulse", True)):
        b.set(o["panel_exec"], name, value)
    # Execute DAT (Execute page): framestart, exit.
    o["frame_exec"] = b.create(comp, "executeDAT", "frame_exec", 3, 10)
    b.load_dat(o["frame_exec"], DAT_FILES["frame_exec"])
    b.set(o["frame_exec"], "framestart", True)
    b.set(o["frame_exec"], "exit", True)
    o["daemon_log"] = b.create(comp, "textDAT", "daemon_log", 4, 10)
    o["acks"] = b.create(comp, "tableDAT", "acks", 5, 10)
    if o["acks"] is not None:
        o["acks"].text = "address\tsent\tapplied\n"
    o["param_map"] = b.create(comp, "tableDAT", "param_map", 6, 10)

    # --- MIDI: Device Mapper -> MIDI In Map CHOP -> export -------------------------------
    # MIDI In Map CHOP (MidiInMap page): id (Device ID from Dialogs > MIDI Device Mapper),
    # sliders, buttons (channels s1.., b1..).
    o["midi_device"] = b.create(comp, "midiinmapCHOP", "midi_device", 0, 13)
    b.set(o["midi_device"], "id", P + "Mididevice", expr=True)
    b.set(o["midi_device"], "sliders", "s[1-32]")
    b.set(o["midi_device"], "buttons", "b[1-32]")
    # MIDI In CHOP, same Device ID. Source page: id, channel (MIDI channel 1), prefix (empty:
    # channels are not split per MIDI channel). Control page: controlname "c" ("appended with
    # the controller index 0-127": c0..c127), controltype index, controlind, norm off (0-127).
    o["midi_direct"] = b.create(comp, "midiinCHOP", "midi_direct", 0, 14)
    for name, value in (("channel", "1"), ("prefix", ""), ("controlname", "c"), ("controltype", "index"),
                        ("controlind", "0-127"), ("norm", "off")):
        b.set(o["midi_direct"], name, value)
    b.set(o["midi_direct"], "id", P + "Mididevice", expr=True)
    o["midi_merge"] = b.create(comp, "mergeCHOP", "midi_merge", 1, 13)
    b.connect(o["midi_device"], o["midi_merge"], 0)
    b.connect(o["midi_direct"], o["midi_merge"], 1)
    # Script CHOP (Script page): callbacks (onCook builds one channel per mapped parameter,
    # named "<comp>:<Par>", from the midi_map table; parameters the user bound, exported or
    # gave an expression are left out).
    o["midi_scale_callbacks"] = b.create(comp, "textDAT", "midi_scale_callbacks", 2, 14)
    b.load_dat(o["midi_scale_callbacks"], DAT_FILES["midi_scale_callbacks"])
    o["midi_scaled"] = b.create(comp, "scriptCHOP", "midi_scaled", 2, 13)
    b.set(o["midi_scaled"], "callbacks", "midi_scale_callbacks")
    b.connect(o["midi_merge"], o["midi_scaled"])
    # Null CHOP, Common page: exportmethod = autoname ("Channel Name is Path:Parameter"),
    # autoexportroot = the COMP's parent (channel "avatar_bridge:Strength"); Export flag on.
    o["midi_out"] = b.create(comp, "nullCHOP", "midi_out", 3, 13)
    b.connect(o["midi_scaled"], o["midi_out"])
    b.set(o["midi_out"], "exportmethod", "autoname")
    b.set(o["midi_out"], "autoexportroot", "parent(2)", expr=True)
    if o["midi_out"] is not None:
        try:
            o["midi_out"].export = True  # CHOP_Class.export: the Export flag
        except Exception as exc:
            b.missing.append(f"nullCHOP export flag refused: {exc} (see {DOC}CHOP_Class)")
    # CHOP Execute DAT (CHOP Execute page): chop, valuechange (MIDI learn, pulse buttons).
    o["midi_exec"] = b.create(comp, "chopexecuteDAT", "midi_exec", 2, 12)
    b.load_dat(o["midi_exec"], DAT_FILES["midi_exec"])
    b.set(o["midi_exec"], "chop", "midi_merge")
    b.set(o["midi_exec"], "valuechange", True)
    o["midi_map"] = b.create(comp, "tableDAT", "midi_map", 4, 13)
    if o["midi_map"] is not None:
        with open(os.path.join(b.folder, MIDI_SAMPLE), encoding="utf-8") as f:
            o["midi_map"].text = f.read()

    # --- the extension --------------------------------------------------------------------
    o[EXT_NAME] = b.create(comp, "textDAT", EXT_NAME, 0, 16)
    b.load_dat(o[EXT_NAME], DAT_FILES[EXT_NAME])
    return o


def write_param_map(dat, specs) -> None:
    """The ``param_map`` table: each panel parameter's OSC address, type and range."""
    if dat is None:
        return
    rows = ["name\taddress\ttype\tmin\tmax\tdefault\tpage"]
    for s in specs:
        rows.append("\t".join(str(v if v is not None else "") for v in
                              (s.name, s.address, s.osc_type or "-", s.min, s.max, s.default, s.page)))
    dat.text = "\n".join(rows) + "\n"


def _construct(b: Builder, parent, folder: str, project_folder: str):
    """Everything inside a new COMP; returns ``(comp, ops, specs)``. Raises on any failure."""
    entries = panel.read_schema(folder)
    comp = b.create(parent, "baseCOMP", COMP_NAME, 0, 0)  # a taken name gives the next numbered one
    if comp is None:
        raise RuntimeError("this TouchDesigner build has no baseCOMP")
    try:
        add_fixed_pages(comp, folder, project_folder)
        specs = panel.specs_from_schema(entries, reserved=FIXED_PARS)
        presets = panel.list_presets(os.path.join(os.path.dirname(folder), "presets"))
        panel.create_parameters(comp, specs, presets)
        names, labels = panel.midi_targets(specs)
        target = getattr(comp.par, "Learntarget", None)
        if target is not None and names:
            target.menuNames, target.menuLabels = names, labels
            target.default = target.val = names[0]
        ops = build_network(b, comp)
        write_param_map(ops.get("param_map"), specs)
        # Extensions page: ext0object, ext0promote; initextonstart (Feb 2026 docs copy only).
        b.set(comp, "ext0object", f"op('./{EXT_NAME}').module.{EXT_NAME}(me)")
        b.set(comp, "ext0promote", True)
        b.set(comp, "initextonstart", True)
    except BaseException:
        comp.destroy()  # never leave a half-built COMP behind
        raise
    return comp, ops, specs


def build(td=None, parent_path: str = "/project1", folder: str = HERE, save: bool = True) -> dict:
    """Build the operator in the running TouchDesigner (``td`` = its ``td`` module).

    Returns ``{"comp", "ops", "specs", "missing", "saved"}``; prints a report to the
    Textport. A missing operator type or parameter name is reported in ``missing``, never
    raised. Anything else that goes wrong (a file in ``folder`` that cannot be read, an
    error in TouchDesigner) destroys the new COMP, leaves an older one untouched and
    raises.
    """
    if td is None:
        import td  # TouchDesigner's module: op, project and the operator types
    b = Builder(td, folder)
    parent = td.op(parent_path) or td.op("/")
    project_folder = getattr(td.project, "folder", "") or ""
    old = parent.op(COMP_NAME)
    comp, ops, specs = _construct(b, parent, folder, project_folder)

    if old is not None:  # the new one is complete: it replaces the old one and takes its name
        old_ext = getattr(getattr(old, "ext", None), EXT_NAME, None)
        if old_ext is not None:
            old_ext.Exit()  # stop a daemon the old COMP started
        comp.nodeX, comp.nodeY = old.nodeX, old.nodeY
        old.destroy()
    comp.name = COMP_NAME
    try:
        comp.initializeExtensions()  # COMP_Class.initializeExtensions
    except Exception as exc:
        b.missing.append(f"initializeExtensions failed: {exc!r} (see {DOC}COMP_Class)")

    saved = []
    if save:
        path = os.path.join(folder, TOX_FILE)
        try:
            saved.append(comp.save(path) or path)  # COMP.save(filepath): the .tox
        except Exception as exc:
            b.missing.append(f"could not save {path}: {exc}")

    print(f"avatar-bridge: built {comp.path} with {len(ops)} operators and {len(specs)} panel parameters "
          f"from {panel.SCHEMA_FILE}")
    for path in saved:
        print("  saved", path, "(drag it into any project; save your .toe yourself)")
    if b.missing:
        print(f"  {len(b.missing)} name(s) this TouchDesigner build did not take (skipped):")
        for line in b.missing:
            print("   -", line)
    return {"comp": comp, "ops": ops, "specs": specs, "missing": b.missing, "saved": saved}


if __name__ == "__main__":
    build()
