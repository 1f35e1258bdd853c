"""Build the avatar-bridge TouchDesigner project with TouchDesigner's Python API.

Paste this one line into TouchDesigner's Textport (Dialogs > Textport and DATs), with
your checkout's path::

    import runpy; runpy.run_path(r'C:\\path\\to\\avatar-bridge\\touchdesigner\\build_avatar_bridge.py', run_name='__main__')

It creates ``/project1/avatar_bridge`` (replacing an older one), saves the COMP as
``touchdesigner/AvatarBridge.tox`` and the project as ``touchdesigner/AvatarBridge.toe``,
and prints what it built and any operator type or parameter name this TouchDesigner build
does not have (those are reported and skipped, never fatal). The ``.toe``/``.tox`` are
TouchDesigner's binary files: they are not in git; this script and the ``.py`` files the
COMP loads from disk are.

The network (all inside the COMP; the custom parameters on its pages drive it)::

    camera (Video Device In) -> to_daemon_fit (Fit: Width x Height, rgba8fixed) -> to_daemon (Null)
        -> spout_to_daemon (Syphon Spout Out, sender = Sendername)      [active when Transport = spout]
        -> ndi_to_daemon   (NDI Out, name = Sendername)                 [active when Transport = ndi]
    [daemon]
    spout_from_daemon (Syphon Spout In, sender = Receivername) --\\
    ndi_from_daemon   (NDI In, name = Ndisource, extraips)       --> from_daemon (Switch)
    bg_movie (Movie File In) / bg_color (Constant) / bg_in (In) --> background (Switch)
    from_daemon over background -> composite (Over) -> out (Null) -> out1 (Out),
        obs_out (Syphon Spout Out for OBS), stage_window (Window COMP)
    oscout (OSC Out DAT) / oscin (OSC In DAT) / panel_exec (Parameter Execute DAT) /
    frame_exec (Execute DAT) / midi_device (MIDI In Map CHOP) + midi_direct (MIDI In CHOP)
        -> midi_merge (Merge CHOP) -> midi_exec (CHOP Execute DAT) / midi_map (Table DAT)
    status_text (Text TOP), daemon_log (Text DAT), acks and param_map (Table DATs)

Operator type tokens and parameter names: each is set through ``Builder.set``, next to a
comment naming the docs.derivative.ca page it was read from (``DOCS`` lists the pages).
They were checked against the User Guide pages for the current Official builds
(2023.1x and 2025.3x series); names marked "(not on the stored page)" come from
platform.md or from published TouchDesigner build scripts and are the likeliest to be
reported missing on some build.
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(globals().get("__file__") or "build_avatar_bridge.py"))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import avatar_bridge_panel as panel  # noqa: E402

DOC = "https://docs.derivative.ca/"
#: The User Guide page of every operator type the network uses.
DOCS = {
    "baseCOMP": DOC + "Base_COMP",
    "windowCOMP": DOC + "Window_COMP",
    "videodeviceinTOP": DOC + "Video_Device_In_TOP",
    "fitTOP": DOC + "Fit_TOP",
    "nullTOP": DOC + "Null_TOP",
    "syphonspoutoutTOP": DOC + "Syphon_Spout_Out_TOP",
    "syphonspoutinTOP": DOC + "Syphon_Spout_In_TOP",
    "ndioutTOP": DOC + "NDI_Out_TOP",
    "ndiinTOP": DOC + "NDI_In_TOP",
    "switchTOP": DOC + "Switch_TOP",
    "moviefileinTOP": DOC + "Movie_File_In_TOP",
    "constantTOP": DOC + "Constant_TOP",
    "inTOP": DOC + "In_TOP",
    "outTOP": DOC + "Out_TOP",
    "overTOP": DOC + "Over_TOP",
    "textTOP": DOC + "Text_TOP",
    "oscoutDAT": DOC + "OSC_Out_DAT",
    "oscinDAT": DOC + "OSC_In_DAT",
    "parameterexecuteDAT": DOC + "Parameter_Execute_DAT",
    "executeDAT": DOC + "Execute_DAT",
    "chopexecuteDAT": DOC + "CHOP_Execute_DAT",
    "textDAT": DOC + "Text_DAT",
    "tableDAT": DOC + "Table_DAT",
    "midiinmapCHOP": DOC + "MIDI_In_Map_CHOP",
    "midiinCHOP": DOC + "MIDI_In_CHOP",
    "mergeCHOP": DOC + "Merge_CHOP",
}
#: Python API pages used: COMP.create/save/appendCustomPage (COMP_Class), Page.append*
#: (Page_Class), Par.min/max/normMin/normMax/clampMin/clampMax/menuNames/readOnly
#: (Par_Class), Connector.connect (Connector_Class), project.save (Project_Class),
#: Extensions page ext0object/ext0promote/reinitextensions (Extensions).
API_DOCS = [DOC + p for p in ("COMP_Class", "Page_Class", "Par_Class", "Connector_Class", "Project_Class", "Extensions")]

COMP_NAME = "avatar_bridge"
EXT_NAME = "AvatarBridgeExt"
TOX_FILE = "AvatarBridge.tox"
TOE_FILE = "AvatarBridge.toe"
MIDI_SAMPLE = "midi_map_nanokontrol2.tsv"
#: The .py files the COMP's DATs load from disk (File + Sync to File).
DAT_FILES = {
    EXT_NAME: "avatar_bridge_ext.py",
    "osc_in_callbacks": "osc_in_callbacks.py",
    "panel_exec": "parexec_callbacks.py",
    "frame_exec": "frame_callbacks.py",
    "midi_exec": "midi_callbacks.py",
}
P = "parent().par."  # expressions inside the COMP read its custom parameters


class Builder:
    """Creates operators and sets parameters without ever stopping on a missing name.

    Every operator type token or parameter this TouchDesigner build lacks, and every
    value it refuses, is added to ``missing`` (with the docs page to check) and skipped.
    """

    def __init__(self, td, folder: str):
        self.td = td
        self.folder = folder
        self.missing: list[str] = []
        self.tokens: dict[str, str] = {}

    def create(self, parent, token: str, name: str, x: int, y: int):
        """``parent.create(<token>, name)`` at grid cell (x, y); None if the type is missing."""
        optype = getattr(self.td, token, None)
        if optype is None:
            self.missing.append(f"operator type {token} (see {DOCS.get(token, DOC)})")
            return None
        try:
            o = parent.create(optype, name)
        except Exception as exc:
            self.missing.append(f"cannot create {token} {name!r}: {exc}")
            return None
        o.nodeX, o.nodeY = x * 200, -y * 150
        self.tokens[o.path] = token
        return o

    def set(self, o, name: str, value, expr: bool = False) -> bool:
        """``o.par.<name> = value`` (``.expr`` when ``expr``); False, and reported, when it fails."""
        if o is None:
            return False
        par = getattr(o.par, name, None)
        token = self.tokens.get(o.path, "?")
        if par is None:
            self.missing.append(f"{token}.par.{name} on {o.path} (see {DOCS.get(token, DOC)})")
            return False
        try:
            if expr:
                par.expr = value
            else:
                par.val = value
        except Exception as exc:
            self.missing.append(f"{o.path}.par.{name} = {value!r} refused: {exc}")
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
        """Point a DAT at ``<Tdfolder>/<filename>`` (File + Sync to File) and load its text now."""
        if dat is None:
            return
        path = os.path.join(self.folder, filename)
        with open(path, encoding="utf-8") as f:
            dat.text = f.read()
        # Text DAT page: file, syncfile (DAT "File"/"Sync to File" parameters).
        self.set(dat, "file", P + "Tdfolder.eval() + '/" + filename + "'", expr=True)
        self.set(dat, "syncfile", True)


# --------------------------------------------------------------------------- custom parameters

STATUS_PARS = ["Connected", "State", "Fps", "Latencyms", "Dropped", "Lasterror", "Daemonrunning", "Openwindow", "Resync"]
BRIDGE_PARS = ["Tdfolder", "Presetsfolder", "Host", "Sendport", "Receiveport", "Transport", "Sendername",
               "Receivername", "Obssendername", "Ndisource", "Extraips", "Width", "Height", "Background",
               "Backgroundfile", "Backgroundcolorr", "Backgroundcolorg", "Backgroundcolorb"]
DAEMON_PARS = ["Daemoncmd", "Device", "Daemonargs", "Autorestart", "Resendonreconnect", "Start", "Stop",
               "Clearlog", "Rebuildpanel", "Refreshpresets"]
MIDI_PARS = ["Midimapfile", "Midideviceid", "Miditarget", "Midilearn", "Midistatus", "Savemidimap", "Loadmidimap"]
FIXED_PARS = STATUS_PARS + BRIDGE_PARS + DAEMON_PARS + MIDI_PARS


def _first(group):
    return group[0]


def _menu(page, name, label, items, labels=None, default=None):
    par = _first(page.appendMenu(name, label=label))
    par.menuNames = items
    par.menuLabels = labels or items
    par.default = par.val = default if default is not None else items[0]
    return par


def _value(group, value, readonly=False):
    par = _first(group)
    par.default = par.val = value
    if readonly:
        par.readOnly = True
    return par


def add_fixed_pages(comp, folder: str) -> dict[str, object]:
    """The hand-made pages (Status, Bridge, Daemon, MIDI): connection, daemon, MIDI settings.

    Returns ``{page name: Page}``. Schema pages are added after these.
    """
    repo = os.path.dirname(folder)
    pages = {}
    s = pages["Status"] = comp.appendCustomPage("Status")
    _value(s.appendToggle("Connected", label="Connected (heartbeat)"), False, readonly=True)
    _value(s.appendStr("State", label="State"), "not connected", readonly=True)
    _value(s.appendFloat("Fps", label="FPS"), 0.0, readonly=True)
    _value(s.appendFloat("Latencyms", label="Latency (ms)"), 0.0, readonly=True)
    _value(s.appendInt("Dropped", label="Dropped frames"), 0, readonly=True)
    _value(s.appendStr("Lasterror", label="Last error"), "", readonly=True)
    _value(s.appendToggle("Daemonrunning", label="Daemon started here"), False, readonly=True)
    s.appendPulse("Openwindow", label="Open stage window")
    s.appendPulse("Resync", label="Send whole panel")

    b = pages["Bridge"] = comp.appendCustomPage("Bridge")
    _value(b.appendFolder("Tdfolder", label="touchdesigner folder"), folder)
    _value(b.appendFolder("Presetsfolder", label="Presets folder"), os.path.join(repo, "presets"))
    _value(b.appendStr("Host", label="Daemon host (OSC)"), "127.0.0.1")
    _value(b.appendInt("Sendport", label="Daemon OSC port"), 9000)
    _value(b.appendInt("Receiveport", label="Status port (here)"), 9001)
    _menu(b, "Transport", "Video transport", ["spout", "ndi"], ["Spout / Syphon (this machine)", "NDI (network)"])
    _value(b.appendStr("Sendername", label="Camera sender name"), "TDOut")
    _value(b.appendStr("Receivername", label="Avatar sender name"), "AvatarBridge")
    _value(b.appendStr("Obssendername", label="Output sender (OBS)"), "AvatarBridgeOBS")
    _value(b.appendStr("Ndisource", label="NDI source (MACHINE (name))"), "")
    _value(b.appendStr("Extraips", label="NDI extra IPs"), "")
    _value(b.appendInt("Width", label="Daemon input width"), 512)
    _value(b.appendInt("Height", label="Daemon input height"), 512)
    _menu(b, "Background", "Background", ["movie", "color", "input"],
          ["Movie file", "Colour", "COMP input (wire any TOP in)"])
    _value(b.appendFile("Backgroundfile", label="Background movie"), "")
    rgb = b.appendRGB("Backgroundcolor", label="Background colour")
    for par, v in zip(rgb, (0.05, 0.05, 0.08)):
        par.default = par.val = v

    d = pages["Daemon"] = comp.appendCustomPage("Daemon")
    _value(d.appendStr("Daemoncmd", label="Daemon command"), "avatar-bridge")
    _menu(d, "Device", "Torch device", ["cuda", "cpu", "mps"])
    _value(d.appendStr("Daemonargs", label="Extra arguments"), "")
    _value(d.appendToggle("Autorestart", label="Auto restart"), True)
    _value(d.appendToggle("Resendonreconnect", label="Re-send changes on reconnect"), True)
    d.appendPulse("Start", label="Start daemon")
    d.appendPulse("Stop", label="Stop daemon")
    d.appendPulse("Clearlog", label="Clear log")
    d.appendPulse("Rebuildpanel", label="Rebuild panel from schema")
    d.appendPulse("Refreshpresets", label="Refresh presets")

    m = pages["MIDI"] = comp.appendCustomPage("MIDI")
    _value(m.appendFile("Midimapfile", label="MIDI map file"), os.path.join(folder, MIDI_SAMPLE))
    _value(m.appendInt("Midideviceid", label="Device Mapper ID"), 1)
    _menu(m, "Miditarget", "MIDI learn target", ["none"])
    m.appendPulse("Midilearn", label="MIDI learn")
    _value(m.appendStr("Midistatus", label="MIDI status"), "", readonly=True)
    m.appendPulse("Savemidimap", label="Save MIDI map")
    m.appendPulse("Loadmidimap", label="Load MIDI map")
    return pages


# --------------------------------------------------------------------------- network


def build_network(b: Builder, comp) -> dict[str, object]:
    """Create and wire every operator inside ``comp``; returns them by name."""
    o = {}

    # --- camera -> daemon ------------------------------------------------------------
    # Video Device In TOP page: active, library, device (device left at the first camera).
    o["camera"] = b.create(comp, "videodeviceinTOP", "camera", 0, 0)
    b.set(o["camera"], "active", True)
    # Fit TOP page: fit (fitoutside = fill the frame, keep aspect, crop); TOP Common page:
    # outputresolution (custom), resolutionw/resolutionh, format (rgba8fixed: 8-bit RGBA,
    # what Spout and the daemon read; platform.md).
    o["to_daemon_fit"] = b.create(comp, "fitTOP", "to_daemon_fit", 1, 0)
    b.set(o["to_daemon_fit"], "fit", "fitoutside")
    b.set(o["to_daemon_fit"], "outputresolution", "custom")
    b.set(o["to_daemon_fit"], "resolutionw", P + "Width", expr=True)
    b.set(o["to_daemon_fit"], "resolutionh", P + "Height", expr=True)
    b.set(o["to_daemon_fit"], "format", "rgba8fixed")
    o["to_daemon"] = b.create(comp, "nullTOP", "to_daemon", 2, 0)
    # Syphon Spout Out TOP: sendername, active (not on the stored page; platform.md and
    # published build scripts).
    o["spout_to_daemon"] = b.create(comp, "syphonspoutoutTOP", "spout_to_daemon", 3, 0)
    b.set(o["spout_to_daemon"], "sendername", P + "Sendername", expr=True)
    b.set(o["spout_to_daemon"], "active", True)  # the extension switches Spout/NDI (Transport)
    # NDI Out TOP page: active, name (Source Name).
    o["ndi_to_daemon"] = b.create(comp, "ndioutTOP", "ndi_to_daemon", 3, 1)
    b.set(o["ndi_to_daemon"], "name", P + "Sendername", expr=True)
    b.set(o["ndi_to_daemon"], "active", False)
    b.connect(o["camera"], o["to_daemon_fit"])
    b.connect(o["to_daemon_fit"], o["to_daemon"])
    b.connect(o["to_daemon"], o["spout_to_daemon"])
    b.connect(o["to_daemon"], o["ndi_to_daemon"])

    # --- daemon -> composite -> output ------------------------------------------------
    # Syphon Spout In TOP: sendername, active (not on the stored page; published scripts).
    o["spout_from_daemon"] = b.create(comp, "syphonspoutinTOP", "spout_from_daemon", 0, 3)
    b.set(o["spout_from_daemon"], "sendername", P + "Receivername", expr=True)
    b.set(o["spout_from_daemon"], "active", True)
    # NDI In TOP page: active, name (Source Name, "MACHINE (name)"), extraips (Extra Search
    # IPs, space-separated).
    o["ndi_from_daemon"] = b.create(comp, "ndiinTOP", "ndi_from_daemon", 0, 4)
    b.set(o["ndi_from_daemon"], "name", P + "Ndisource.eval() or " + P + "Receivername.eval()", expr=True)
    b.set(o["ndi_from_daemon"], "extraips", P + "Extraips", expr=True)
    b.set(o["ndi_from_daemon"], "active", False)
    # Switch TOP page: index (0 = Spout, 1 = NDI, the Transport menu's order).
    o["from_daemon"] = b.create(comp, "switchTOP", "from_daemon", 1, 3)
    b.set(o["from_daemon"], "index", P + "Transport.menuIndex", expr=True)
    b.connect(o["spout_from_daemon"], o["from_daemon"], 0)
    b.connect(o["ndi_from_daemon"], o["from_daemon"], 1)

    # Movie File In TOP page: file. Constant TOP page: colorr/g/b, alpha. In TOP: the COMP's
    # first input, so any TOP wired into the COMP can be the background.
    o["bg_movie"] = b.create(comp, "moviefileinTOP", "bg_movie", 0, 6)
    b.set(o["bg_movie"], "file", P + "Backgroundfile", expr=True)
    o["bg_color"] = b.create(comp, "constantTOP", "bg_color", 0, 7)
    for ch in "rgb":
        b.set(o["bg_color"], "color" + ch, P + "Backgroundcolor" + ch, expr=True)
    b.set(o["bg_color"], "alpha", 1.0)
    o["bg_in"] = b.create(comp, "inTOP", "bg_in", 0, 8)
    o["background"] = b.create(comp, "switchTOP", "background", 1, 6)
    b.set(o["background"], "index", P + "Background.menuIndex", expr=True)
    b.connect(o["bg_movie"], o["background"], 0)
    b.connect(o["bg_color"], o["background"], 1)
    b.connect(o["bg_in"], o["background"], 2)

    # Over TOP: input 1 (the avatar, premultiplied alpha) over input 2 (the background).
    # Transform page (as on the Multiply TOP page): size = input2 (the background sets the
    # output resolution), prefit = fitbest.
    o["composite"] = b.create(comp, "overTOP", "composite", 3, 3)
    b.set(o["composite"], "size", "input2")
    b.set(o["composite"], "prefit", "fitbest")
    b.connect(o["from_daemon"], o["composite"], 0)
    b.connect(o["background"], o["composite"], 1)
    o["out"] = b.create(comp, "nullTOP", "out", 4, 3)
    b.connect(o["composite"], o["out"])
    o["out1"] = b.create(comp, "outTOP", "out1", 5, 3)
    b.connect(o["out"], o["out1"])
    o["obs_out"] = b.create(comp, "syphonspoutoutTOP", "obs_out", 5, 4)
    b.set(o["obs_out"], "sendername", P + "Obssendername", expr=True)
    b.connect(o["out"], o["obs_out"])
    # Window COMP page: winop (the operator shown), winw/winh, winopen (pulse; published scripts).
    o["stage_window"] = b.create(comp, "windowCOMP", "stage_window", 5, 2)
    if o["out"] is not None:
        b.set(o["stage_window"], "winop", o["out"].path)
    b.set(o["stage_window"], "winw", 1920)
    b.set(o["stage_window"], "winh", 1080)
    # Text TOP page: text (the extension writes state, fps, latency and the last error).
    o["status_text"] = b.create(comp, "textTOP", "status_text", 4, 5)
    b.set(o["status_text"], "text", "avatar-bridge: not connected")

    # --- control: OSC, panel, frame loop -----------------------------------------------
    # OSC Out DAT page: address (Network Address), port (Network Port); .sendOSC() sends.
    o["oscout"] = b.create(comp, "oscoutDAT", "oscout", 0, 10)
    b.set(o["oscout"], "address", P + "Host", expr=True)
    b.set(o["oscout"], "port", P + "Sendport", expr=True)
    # OSC In DAT page: port, callbacks (Callbacks DAT with onReceiveOSC).
    o["osc_in_callbacks"] = b.create(comp, "textDAT", "osc_in_callbacks", 2, 11)
    b.load_dat(o["osc_in_callbacks"], DAT_FILES["osc_in_callbacks"])
    o["oscin"] = b.create(comp, "oscinDAT", "oscin", 1, 10)
    b.set(o["oscin"], "port", P + "Receiveport", expr=True)
    b.set(o["oscin"], "callbacks", "osc_in_callbacks")
    # Parameter Execute DAT page: op, pars, custom, builtin, valuechange, onpulse.
    o["panel_exec"] = b.create(comp, "parameterexecuteDAT", "panel_exec", 2, 10)
    b.load_dat(o["panel_exec"], DAT_FILES["panel_exec"])
    for name, value in (("op", ".."), ("pars", "*"), ("custom", True), ("builtin", False),
                        ("valuechange", True), ("onpulse", True)):
        b.set(o["panel_exec"], name, value)
    # Execute DAT page: framestart, exit.
    o["frame_exec"] = b.create(comp, "executeDAT", "frame_exec", 3, 10)
    b.load_dat(o["frame_exec"], DAT_FILES["frame_exec"])
    b.set(o["frame_exec"], "framestart", True)
    b.set(o["frame_exec"], "exit", True)
    o["daemon_log"] = b.create(comp, "textDAT", "daemon_log", 4, 10)
    o["acks"] = b.create(comp, "tableDAT", "acks", 5, 10)
    if o["acks"] is not None:
        o["acks"].text = "address\tsent\tapplied\n"
    o["param_map"] = b.create(comp, "tableDAT", "param_map", 6, 10)

    # --- MIDI ---------------------------------------------------------------------------
    # MIDI In Map CHOP page: id (Device ID from Dialogs > MIDI Device Mapper), sliders, buttons.
    o["midi_device"] = b.create(comp, "midiinmapCHOP", "midi_device", 0, 13)
    b.set(o["midi_device"], "id", P + "Midideviceid", expr=True)
    b.set(o["midi_device"], "sliders", "s[1-32]")
    b.set(o["midi_device"], "buttons", "b[1-32]")
    # MIDI In CHOP: controller channels named ch<MIDI channel>c<CC>, values 0..127 (the
    # user picks the device on its page).
    o["midi_direct"] = b.create(comp, "midiinCHOP", "midi_direct", 0, 14)
    o["midi_merge"] = b.create(comp, "mergeCHOP", "midi_merge", 1, 13)
    b.connect(o["midi_device"], o["midi_merge"], 0)
    b.connect(o["midi_direct"], o["midi_merge"], 1)
    # CHOP Execute DAT page: chop, valuechange.
    o["midi_exec"] = b.create(comp, "chopexecuteDAT", "midi_exec", 2, 13)
    b.load_dat(o["midi_exec"], DAT_FILES["midi_exec"])
    b.set(o["midi_exec"], "chop", "midi_merge")
    b.set(o["midi_exec"], "valuechange", True)
    o["midi_map"] = b.create(comp, "tableDAT", "midi_map", 3, 13)
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


def build(td=None, parent_path: str = "/project1", folder: str = HERE, save: bool = True) -> dict:
    """Build the project in the running TouchDesigner (``td`` = its ``td`` module).

    Returns ``{"comp", "ops", "specs", "missing", "saved"}``; prints a report to the
    Textport. Raises nothing for a missing operator type or parameter name (they are in
    ``missing``); raises OSError only when a file in ``folder`` cannot be read.
    """
    if td is None:
        import td  # TouchDesigner's module: op, project and the operator types
    b = Builder(td, folder)
    entries = panel.read_schema(folder)
    parent = td.op(parent_path) or td.op("/")
    old = parent.op(COMP_NAME)
    if old is not None:
        old_ext = getattr(getattr(old, "ext", None), EXT_NAME, None)
        if old_ext is not None:
            old_ext.Exit()  # stop a daemon the old COMP started before it goes
        old.destroy()
    comp = b.create(parent, "baseCOMP", COMP_NAME, 0, 0)
    if comp is None:
        raise RuntimeError("this TouchDesigner build has no baseCOMP")

    add_fixed_pages(comp, folder)
    specs = panel.specs_from_schema(entries, reserved=FIXED_PARS)
    presets = panel.list_presets(os.path.join(os.path.dirname(folder), "presets"))
    panel.create_parameters(comp, specs, presets)
    names, labels = panel.midi_targets(specs)
    target = getattr(comp.par, "Miditarget", None)
    if target is not None and names:
        target.menuNames, target.menuLabels = names, labels
        target.default = target.val = names[0]

    ops = build_network(b, comp)
    write_param_map(ops.get("param_map"), specs)

    # Extensions page: ext0object, ext0promote, initextonstart; reinitextensions (pulse).
    b.set(comp, "ext0object", f"op('./{EXT_NAME}').module.{EXT_NAME}(me)")
    b.set(comp, "ext0promote", True)
    b.set(comp, "initextonstart", True)
    reinit = getattr(comp.par, "reinitextensions", None)
    if reinit is not None:
        reinit.pulse()
    else:
        b.missing.append(f"baseCOMP.par.reinitextensions (see {DOC}Extensions)")

    saved = []
    if save:
        for path, saver in ((os.path.join(folder, TOX_FILE), comp.save),
                            (os.path.join(folder, TOE_FILE), td.project.save)):
            try:
                saver(path)
                saved.append(path)
            except Exception as exc:
                b.missing.append(f"could not save {path}: {exc}")

    print(f"avatar-bridge: built {comp.path} with {len(ops)} operators and {len(specs)} panel parameters "
          f"from {panel.SCHEMA_FILE}")
    for path in saved:
        print("  saved", path)
    if b.missing:
        print(f"  {len(b.missing)} name(s) this TouchDesigner build did not take (skipped):")
        for line in b.missing:
            print("   -", line)
    return {"comp": comp, "ops": ops, "specs": specs, "missing": b.missing, "saved": saved}


if __name__ == "__main__":
    build()
