"""The TouchDesigner project (touchdesigner/), tested on Linux against a fake ``td`` module.

The build script runs against ``tests/fakes/td.py`` (it records operators, parameters,
expressions, connections and custom pages, following TouchDesigner's Python API); the
extension and callback files are the real ones, loaded from disk into the fake DATs as
TouchDesigner would, and driven through the fake's OSC In / Parameter Execute / CHOP
Execute / Execute emulation.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sys
import time
from pathlib import Path

import pytest

from bridge.cli import build_parser
from bridge.osc.schema import osc_schema
from bridge.presets import list_presets

ROOT = Path(__file__).resolve().parents[1]
TD_DIR = ROOT / "touchdesigner"
FAKES = Path(__file__).resolve().parent / "fakes"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fake_td = _load("fake_td", FAKES / "td.py")
build_script = _load("build_avatar_bridge", TD_DIR / "build_avatar_bridge.py")
panel = sys.modules["avatar_bridge_panel"]  # imported by the build script from touchdesigner/
ext_module_file = TD_DIR / "avatar_bridge_ext.py"


class Clock:
    """A hand-advanced monotonic clock for the extension's watchdog."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _build(folder: Path = TD_DIR):
    td = fake_td.fresh()
    result = build_script.build(td=td, folder=str(folder))
    comp = result["comp"]
    ext = comp.ext.AvatarBridgeExt
    ext.clock = Clock()
    return td, comp, ext, result


@pytest.fixture()
def built():
    return _build()


def _schema_by_address() -> dict[str, dict]:
    return {e["address"]: e for e in json.loads(json.dumps(osc_schema()))}


def _edges(td) -> set[tuple[str, str, int]]:
    return {(s.name, d.name, i) for s, d, i in td.edges}


def _sent(comp) -> list[tuple[str, list]]:
    return comp.op("oscout").sent


def _osc(td, comp, address, *args):
    td.receive_osc(comp.op("oscin"), address, list(args))


# --------------------------------------------------------------------------- schema file


def test_committed_schema_matches_the_daemon():
    committed = json.loads((TD_DIR / "osc_schema.json").read_text(encoding="utf-8"))
    assert committed == json.loads(json.dumps(osc_schema())), (
        "touchdesigner/osc_schema.json is stale: run python touchdesigner/sync_schema.py")
    sync = _load("sync_schema", TD_DIR / "sync_schema.py")
    assert sync.main(["--check"]) == 0


# --------------------------------------------------------------------------- network


def test_camera_goes_through_an_rgba8_fit_into_the_spout_sender(built):
    td, comp, _, _ = built
    ops = {o.name: o for o in td.created if o.parent() is comp}
    assert ops["camera"].OPType == "videodeviceinTOP"
    assert ops["spout_to_daemon"].OPType == "syphonspoutoutTOP"
    edges = _edges(td)
    assert {("camera", "to_daemon_fit", 0), ("to_daemon_fit", "to_daemon", 0), ("to_daemon", "spout_to_daemon", 0)} <= edges
    fit = ops["to_daemon_fit"]
    assert fit.par.format.eval() == "rgba8fixed"
    assert fit.par.outputresolution.eval() == "custom"
    assert (fit.par.resolutionw.expr, fit.par.resolutionh.expr) == ("parent().par.Width", "parent().par.Height")
    assert ops["spout_to_daemon"].par.sendername.expr == "parent().par.Sendername"
    assert comp.par.Sendername.eval() == "TDOut"


def test_spout_in_goes_over_the_background_to_window_and_obs(built):
    td, comp, _, _ = built
    ops = {o.name: o for o in td.created if o.parent() is comp}
    assert ops["spout_from_daemon"].OPType == "syphonspoutinTOP"
    assert ops["composite"].OPType == "overTOP"
    assert ops["stage_window"].OPType == "windowCOMP"
    edges = _edges(td)
    # the avatar is input 0 (over), the background input 1 (under)
    assert {("spout_from_daemon", "from_daemon", 0), ("from_daemon", "composite", 0),
            ("background", "composite", 1), ("composite", "out", 0), ("out", "out1", 0), ("out", "obs_out", 0)} <= edges
    assert {("bg_movie", "background", 0), ("bg_color", "background", 1), ("bg_in", "background", 2)} <= edges
    assert ops["stage_window"].par.winop.eval() == ops["out"].path
    assert ops["obs_out"].OPType == "syphonspoutoutTOP"
    assert ops["obs_out"].par.sendername.expr == "parent().par.Obssendername"
    assert ops["background"].par.index.expr == "parent().par.Background.menuIndex"
    assert comp.par.Background.menuNames == ["movie", "color", "input"]  # the switch's input order


def test_ndi_variant_for_a_remote_daemon(built):
    td, comp, _, _ = built
    ops = {o.name: o for o in td.created if o.parent() is comp}
    assert ops["ndi_to_daemon"].OPType == "ndioutTOP"
    assert ops["ndi_from_daemon"].OPType == "ndiinTOP"
    edges = _edges(td)
    assert ("to_daemon", "ndi_to_daemon", 0) in edges
    assert ("ndi_from_daemon", "from_daemon", 1) in edges
    assert ops["ndi_from_daemon"].par.extraips.expr == "parent().par.Extraips"
    assert ops["from_daemon"].par.index.expr == "parent().par.Transport.menuIndex"
    assert comp.par.Transport.menuNames == ["spout", "ndi"]  # index 0 = Spout In, 1 = NDI In
    pairs = ("spout_to_daemon", "spout_from_daemon", "ndi_to_daemon", "ndi_from_daemon")
    assert [ops[n].par.active.eval() for n in pairs] == [True, True, False, False]
    comp.par.Transport.val = "ndi"  # one switch moves both directions to NDI
    assert [ops[n].par.active.eval() for n in pairs] == [False, False, True, True]


def test_every_expression_reads_a_parameter_that_exists(built):
    td, comp, _, _ = built
    exprs = [(o.path, p.name, p.expr) for o in td.created for p in o.par._pars.values() if p.expr]
    assert len(exprs) > 15
    for path, name, expr in exprs:
        for used in re.findall(r"parent\(\)\.par\.(\w+)", expr):
            assert getattr(comp.par, used, None) is not None, f"{path}.par.{name} = {expr!r} reads a missing parameter"


def test_dats_load_the_callback_files_from_disk_and_the_extension_starts(built):
    td, comp, ext, _ = built
    for dat_name, filename in build_script.DAT_FILES.items():
        dat = comp.op(dat_name)
        assert dat.text == (TD_DIR / filename).read_text(encoding="utf-8")
        assert dat.par.file.expr.endswith(f"'/{filename}'") and dat.par.syncfile.eval() is True
    assert comp.op("oscin").par.callbacks.eval() == "osc_in_callbacks"
    assert comp.par.ext0object.eval() == "op('./AvatarBridgeExt').module.AvatarBridgeExt(me)"
    assert type(ext).__name__ == "AvatarBridgeExt" and comp.OnOSC == ext.OnOSC  # promoted


def test_build_saves_the_tox_and_the_toe(built):
    td, comp, _, result = built
    assert comp.saved == [str(TD_DIR / "AvatarBridge.tox")]
    assert td.project.saved == [str(TD_DIR / "AvatarBridge.toe")]
    assert result["missing"] == []


def test_missing_names_on_a_td_build_are_reported_not_fatal(monkeypatch):
    monkeypatch.setitem(fake_td.KNOWN_PARS, "syphonspoutoutTOP", fake_td.TOP_COMMON | {"active"})
    td = fake_td.fresh()
    del td.ndiinTOP  # a build without the NDI In TOP
    result = build_script.build(td=td, folder=str(TD_DIR), save=False)
    missing = "\n".join(result["missing"])
    assert "syphonspoutoutTOP.par.sendername" in missing and "Syphon_Spout_Out_TOP" in missing
    assert "operator type ndiinTOP" in missing and "NDI_In_TOP" in missing
    # everything else is still built and wired
    assert ("spout_from_daemon", "from_daemon", 0) in _edges(td)
    assert result["comp"].ext.AvatarBridgeExt is not None


# --------------------------------------------------------------------------- panel from the schema


def test_every_schema_parameter_is_on_the_panel_with_its_range(built):
    td, comp, ext, _ = built
    schema = _schema_by_address()
    specs = {s.address: s for s in ext.specs}
    assert set(specs) == set(schema) - {panel.PING}
    generated = set()
    for address, spec in specs.items():
        e = schema[address]
        par = getattr(comp.par, spec.name)
        generated.add(spec.name)
        assert par.page.name == spec.page
        if e["type"] == "f":
            assert par.style == "Float" and (par.min, par.max) == (e["min"], e["max"])
            assert (par.normMin, par.normMax) == (e["min"], e["max"]) and par.clampMin and par.clampMax
            assert par.default == e["default"]
        elif e["type"] == "i" and (e["min"], e["max"]) != (0, 1):
            assert par.style == "Int" and (par.min, par.max) == (e["min"], e["max"]) and par.default == e["default"]
        elif e["type"] in ("T", "i"):
            assert par.style == "Toggle" and par.default == bool(e["default"])
        elif e["choices"]:
            assert par.style == "Menu" and par.menuNames == e["choices"] and par.default == e["default"]
        elif e["type"] == "s":
            assert par.style in ("Str", "Menu")
        else:
            assert par.style == "Pulse"
        if spec.applied:
            twin = getattr(comp.par, spec.applied)
            assert twin.readOnly and twin.page is par.page
            generated.add(spec.applied)
    on_schema_pages = {p.name for p in comp.customPars if p.page.name not in panel.FIXED_PAGES}
    assert on_schema_pages == generated  # nothing on those pages that the schema did not make
    on_fixed_pages = {p.name for p in comp.customPars if p.page.name in panel.FIXED_PAGES}
    assert on_fixed_pages == set(build_script.FIXED_PARS)  # the names the build kept free


def test_preset_menu_lists_the_presets_folder_and_starts_on_td_over(built):
    td, comp, ext, _ = built
    assert comp.par.Preset.menuNames == list_presets()
    assert comp.par.Preset.eval() == "td-over"
    comp.par.Preset.val = "default"
    assert _sent(comp)[-1] == ("/bridge/preset", ["default"])


def test_names_are_valid_unique_and_open_ranges_still_make_a_slider():
    entries = [
        {"address": "/bridge/fx/a_b", "type": "f", "min": 0.0, "max": None, "choices": None, "default": 2.0,
         "load_time": False, "description": ""},
        {"address": "/bridge/fx/ab", "type": "i", "min": None, "max": None, "choices": None, "default": 3,
         "load_time": True, "description": "x"},
        {"address": "/bridge/status/gain", "type": "f", "min": -1.0, "max": 1.0, "choices": None, "default": 0.0,
         "load_time": False, "description": ""},
    ]
    specs = panel.specs_from_schema(entries, reserved=["Fxab"])
    names = [s.name for s in specs] + [s.applied for s in specs]
    assert all(re.fullmatch(r"[A-Z][a-z0-9]*", n) for n in names) and len(set(names)) == len(names)
    assert "Fxab" not in names
    assert specs[0].page == "Fx" and specs[2].page == "Statusstage"  # never a hand-made page
    assert specs[1].label.endswith("(reload)")
    td = fake_td.fresh()
    comp = td.op("/project1").create(td.baseCOMP, "c")
    panel.create_parameters(comp, specs, [])
    open_top = getattr(comp.par, specs[0].name)
    assert (open_top.normMin, open_top.normMax) == (0.0, 4.0) and open_top.clampMin and not open_top.clampMax
    assert panel.osc_args(specs[0], -5) == [0.0]


# --------------------------------------------------------------------------- sending


def _exercise_everything(td, comp, ext):
    """Touch every control once: every panel parameter, pulses, MIDI, ping, reconnect, resync."""
    for spec in ext.specs:
        par = getattr(comp.par, spec.name)
        if spec.kind == "pulse":
            par.pulse()
        elif spec.kind == "toggle":
            par.val = not par.eval()
        elif spec.kind == "menu":
            items = par.menuNames
            par.val = items[(items.index(par.eval()) + 1) % len(items)] if par.eval() in items else items[0]
        elif spec.kind == "str":
            par.val = "a bronze statue, studio light"
        else:
            low, high = panel.slider_range(spec)
            par.val = low + (high - low) * 0.37
    td.frame(comp.op("frame_exec"))  # never connected: pings
    _osc(td, comp, "/bridge/status/heartbeat", 1)
    ext.clock.t += 10
    td.frame(comp.op("frame_exec"))  # heartbeat lost: pings again
    _osc(td, comp, "/bridge/status/heartbeat", 1)  # back: re-sends the changes
    comp.par.Resync.pulse()
    td.chop_change(comp.op("midi_exec"), "ch1c64", 127.0)


def test_every_address_the_td_side_sends_is_in_the_daemon_schema_with_its_type(built):
    td, comp, ext, _ = built
    _exercise_everything(td, comp, ext)
    schema = _schema_by_address()
    sent = _sent(comp)
    assert {a for a, _ in sent} >= {s.address for s in ext.specs} | {panel.PING}
    for address, args in sent:
        assert address in schema, f"{address} is not in avatar-bridge osc-schema"
        tag = schema[address]["type"]
        kinds = {"f": float, "s": str, "T": bool}
        if tag == "":
            assert args == []
        elif tag == "i":
            assert len(args) == 1 and type(args[0]) is int
        else:
            assert len(args) == 1 and type(args[0]) is kinds[tag], (address, args)


def test_prompt_change_sends_the_string_through_the_osc_out_dat(tmp_path):
    folder = tmp_path / "touchdesigner"
    shutil.copytree(TD_DIR, folder, ignore=shutil.ignore_patterns("*.toe", "*.tox", "__pycache__"))
    entries = json.loads((folder / "osc_schema.json").read_text())
    if not any(e["address"] == "/bridge/avatar/prompt" for e in entries):  # until the avatar stage lands
        entries.insert(0, {"address": "/bridge/avatar/prompt", "type": "s", "min": None, "max": None, "choices": None,
                           "default": "a person", "load_time": False, "description": "Text prompt."})
    (folder / "osc_schema.json").write_text(json.dumps(entries))
    td, comp, ext, _ = _build(folder)
    name = ext.by_address["/bridge/avatar/prompt"].name
    assert getattr(comp.par, name).style == "Str"
    getattr(comp.par, name).val = "a bronze statue, studio light"
    assert _sent(comp)[-1] == ("/bridge/avatar/prompt", ["a bronze statue, studio light"])


def test_slider_change_sends_float_and_pulse_sends_no_argument(built):
    td, comp, _, _ = built
    comp.par.Alphathreshold.val = 0.7
    comp.par.Alpharefine.val = False
    comp.par.Alpharefineradius.val = 9.6
    comp.par.Reload.pulse()
    assert _sent(comp)[-4:] == [("/bridge/alpha/threshold", [0.7]), ("/bridge/alpha/refine", [False]),
                                ("/bridge/alpha/refine_radius", [10]), ("/bridge/reload", [])]


# --------------------------------------------------------------------------- status back from the daemon


def _daemon_replies() -> list[str]:
    """Addresses the daemon's real StatusSender puts on the wire (captured on a UDP socket)."""
    import socket
    import types

    from pythonosc.osc_message import OscMessage

    from bridge.osc.status import StatusSender

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2.0)
    stats = types.SimpleNamespace(state="live", fps=30.0, latency_ms=40.0, dropped=0, last_error="boom")
    sender = StatusSender("127.0.0.1", sock.getsockname()[1], lambda: stats, lambda: {"malformed": 0, "ignored": 0})
    try:
        sender.send_status()
        sender.ack("/bridge/alpha/threshold", 0.5)
        sender.ack("/bridge/reload")
        sender.error("/bridge/alpha/threshold", "out of range")
        sender.pong()
        addresses = []
        while len(addresses) < sender.sent:
            addresses.append(OscMessage(sock.recv(65536)).address)
    finally:
        sock.close()
    return addresses


def test_status_addresses_listened_for_are_sent_by_the_daemon():
    from bridge.osc.schema import ACK_PREFIX, STATUS_ADDRESSES

    on_the_wire = _daemon_replies()
    assert {a for a in on_the_wire if not a.startswith(ACK_PREFIX)} == set(STATUS_ADDRESSES)
    assert {a for a in on_the_wire if a.startswith(ACK_PREFIX)} == {"/bridge/ack/alpha/threshold", "/bridge/ack/reload"}
    ext_module = _load("avatar_bridge_ext_check", ext_module_file)
    assert set(ext_module.LISTENS_FOR) <= set(STATUS_ADDRESSES)
    assert panel.ACK_PREFIX == ACK_PREFIX


def test_status_messages_fill_the_panel_and_the_text_top(built):
    td, comp, _, _ = built
    _osc(td, comp, "/bridge/status/heartbeat", 1)
    _osc(td, comp, "/bridge/status/state", "live")
    _osc(td, comp, "/bridge/status/fps", 29.97)
    _osc(td, comp, "/bridge/status/latency_ms", 41.52)
    _osc(td, comp, "/bridge/status/dropped", 3)
    _osc(td, comp, "/bridge/error", "/bridge/alpha/threshold: must be <= 1.0")
    assert comp.par.Connected.eval() is True
    assert (comp.par.State.eval(), comp.par.Fps.eval(), comp.par.Latencyms.eval(), comp.par.Dropped.eval()) == \
        ("live", 29.97, 41.5, 3)
    assert comp.par.Lasterror.eval() == "/bridge/alpha/threshold: must be <= 1.0"
    text = comp.op("status_text").par.text.eval()
    assert "LIVE" in text and "30.0 fps" in text and "42 ms" in text and "dropped 3" in text
    assert "last error: /bridge/alpha/threshold" in text
    _osc(td, comp, "/bridge/status/error", "")  # no error any more: the last one stays shown
    assert comp.par.Lasterror.eval().startswith("/bridge/alpha/threshold")


def test_ack_shows_the_applied_value_next_to_the_slider(built):
    td, comp, _, _ = built
    comp.par.Alphathreshold.val = 0.7
    assert comp.par.Alphathresholdapplied.eval() == ""  # sent, not yet acknowledged
    _osc(td, comp, "/bridge/ack/alpha/threshold", 0.65)
    _osc(td, comp, "/bridge/ack/alpha/alpha_mode", "premultiplied")
    _osc(td, comp, "/bridge/ack/preset", "td-over")
    assert comp.par.Alphathresholdapplied.eval() == "0.65"
    assert comp.par.Alphaalphamodeapplied.eval() == "premultiplied"
    assert comp.par.Presetapplied.eval() == "td-over"
    assert comp.par.Alphathreshold.eval() == 0.7  # the slider keeps what the performer asked for
    rows = [r.split("\t") for r in comp.op("acks").text.splitlines()]
    assert ["/bridge/alpha/threshold", "0.7", "0.65"] in rows


def test_lost_heartbeat_pings_and_a_restarted_daemon_gets_the_changes_again(built):
    td, comp, ext, _ = built
    frame = comp.op("frame_exec")
    _osc(td, comp, "/bridge/status/heartbeat", 41)
    comp.par.Alphasoftness.val = 0.3
    ext.clock.t += 4.0
    td.frame(frame)
    assert comp.par.Connected.eval() is False and comp.par.State.eval() == "no heartbeat"
    assert _sent(comp)[-1] == ("/bridge/ping", [])
    assert "no heartbeat" in comp.op("status_text").par.text.eval()
    before = len(_sent(comp))
    _osc(td, comp, "/bridge/status/heartbeat", 1)  # the daemon came back (restarted)
    assert _sent(comp)[before:] == [("/bridge/preset", ["td-over"]), ("/bridge/alpha/softness", [0.3])]
    assert comp.op("spout_from_daemon").par.active.eval() is False  # receiver re-opened...
    ext.clock.t += 0.6
    td.frame(frame)
    assert comp.op("spout_from_daemon").par.active.eval() is True  # ...half a second later
    assert "reconnect" in comp.op("daemon_log").text


def test_heartbeat_counter_going_back_means_a_restart(built):
    td, comp, ext, _ = built
    _osc(td, comp, "/bridge/status/heartbeat", 7)
    comp.par.Alphafeather.val = 2.5
    _osc(td, comp, "/bridge/status/heartbeat", 8)
    before = len(_sent(comp))
    _osc(td, comp, "/bridge/status/heartbeat", 1)  # restarted within the timeout
    assert ("/bridge/alpha/feather", [2.5]) in _sent(comp)[before:]


# --------------------------------------------------------------------------- MIDI


def test_sample_midi_map_is_loaded_and_every_row_targets_the_panel(built):
    _, comp, ext, _ = built
    rows = ext.MidiRows()
    controls = [r.control for r in rows]
    assert controls[:8] == [f"ch1c{cc}" for cc in range(8)]  # nanoKONTROL2 faders 1-8 (CC 0-7)
    assert controls[8:14] == [f"ch1c{cc}" for cc in range(16, 22)]  # knobs 1-6 (CC 16-21)
    assert all(r.address in ext.by_address for r in rows)
    assert comp.par.Lasterror.eval() == ""


def test_midi_rows_scale_controller_values_and_send(built):
    td, comp, _, _ = built
    midi = comp.op("midi_exec")
    td.chop_change(midi, "ch1c0", 0.0)  # fader 1 down -> strength at its schema minimum
    assert _sent(comp)[-1] == ("/bridge/avatar/strength", [0.1])
    td.chop_change(midi, "ch1c16", 127 * 0.25)  # knob 1 -> threshold 0..1
    assert _sent(comp)[-1] == ("/bridge/alpha/threshold", [0.25])
    assert comp.par.Alphathreshold.eval() == 0.25  # the panel follows the knob
    td.chop_change(midi, "ch1c18", 63.5)  # knob 3 -> feather over the row's 0..10
    assert _sent(comp)[-1] == ("/bridge/alpha/feather", [5.0])
    td.chop_change(midi, "ch1c32", 0.0)  # S1 -> refine off
    assert _sent(comp)[-1] == ("/bridge/alpha/refine", [False])
    td.chop_change(midi, "ch1c48", 127.0)  # M1 -> bypass (int 0/1 in the schema)
    assert _sent(comp)[-1] == ("/bridge/bypass", [1])
    before = len(_sent(comp))
    for value in (127.0, 127.0, 0.0):  # R1 held then released: one reload
        td.chop_change(midi, "ch1c64", value)
    assert _sent(comp)[before:] == [("/bridge/reload", [])]


def test_midi_learn_maps_the_next_control_and_saves_the_map(built, tmp_path):
    td, comp, ext, _ = built
    comp.par.Midimapfile.val = str(tmp_path / "my_map.tsv")
    comp.par.Miditarget.val = "Alphatemporal"
    comp.par.Midilearn.pulse()
    assert "move a knob" in comp.par.Midistatus.eval()
    td.chop_change(comp.op("midi_exec"), "ch1c22", 100.0)  # knob 7 moved: learned, not sent
    assert not any(a == "/bridge/alpha/temporal" for a, _ in _sent(comp))
    td.chop_change(comp.op("midi_exec"), "ch1c22", 127.0)
    assert _sent(comp)[-1] == ("/bridge/alpha/temporal", [0.95])
    comp.par.Savemidimap.pulse()
    saved, problems = panel.parse_midi_map((tmp_path / "my_map.tsv").read_text())
    assert problems == [] and ("ch1c22", "/bridge/alpha/temporal", 127.0) in [(r.control, r.address, r.inmax) for r in saved]
    comp.op("midi_map").text = ""
    comp.par.Loadmidimap.pulse()
    assert any(r.control == "ch1c22" for r in ext.MidiRows())


def test_a_bad_midi_row_is_reported_and_the_others_still_work(built):
    td, comp, _, _ = built
    comp.op("midi_map").text = ("control\taddress\tmin\tmax\tinmax\tnote\n"
                                "s1\t/bridge/alpha/threshold\t\t\t1\tfader\n"
                                "s2\tthreshold\t\t\t1\ttypo\n"
                                "s3\t/bridge/alpha/softness\tlow\t\t1\ttypo\n")
    td.chop_change(comp.op("midi_exec"), "s1", 0.75)
    assert _sent(comp)[-1] == ("/bridge/alpha/threshold", [0.75])
    assert "MIDI map row" in comp.par.Lasterror.eval()
    assert comp.op("daemon_log").text.count("MIDI map row") == 0  # the log is drained on the next frame
    td.frame(comp.op("frame_exec"))
    assert comp.op("daemon_log").text.count("MIDI map row") == 2


# --------------------------------------------------------------------------- daemon process


def test_daemon_command_is_accepted_by_the_daemon_parser(built):
    _, comp, ext, _ = built
    argv = ext.DaemonCommand()
    assert argv[:2] == ["avatar-bridge", "run"]
    args = build_parser().parse_args(argv[1:])
    assert (args.source, args.sink, args.preset, args.device) == ("spout:TDOut", "spout:AvatarBridge", "td-over", "cuda")
    assert (args.osc_port, args.osc_reply) == (9000, "127.0.0.1:9001")
    comp.par.Transport.val = "ndi"
    comp.par.Receiveport.val = 9101
    args = build_parser().parse_args(ext.DaemonCommand()[1:])
    assert (args.source, args.sink, args.osc_reply) == ("ndi:TDOut", "ndi:AvatarBridge", "127.0.0.1:9101")


def _tick_until(td, comp, ext, predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ext.clock.t += 0.1
        td.frame(comp.op("frame_exec"))
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_start_shows_the_log_stop_ends_it_and_a_crash_restarts(built):
    td, comp, ext, _ = built
    comp.par.Daemoncmd.val = f'"{sys.executable}" "{FAKES / "fake_daemon.py"}"'
    comp.par.Start.pulse()
    try:
        assert comp.par.Daemonrunning.eval() is True
        log = comp.op("daemon_log")
        assert _tick_until(td, comp, ext, lambda: "fake daemon: live" in log.text)
        assert "--preset td-over" in log.text and "--source spout:TDOut" in log.text
        comp.par.Stop.pulse()
        assert _tick_until(td, comp, ext, lambda: not ext.DaemonRunning() and ext.proc is None)
        assert comp.par.Daemonrunning.eval() is False and "stopped" in log.text
        comp.par.Daemonargs.val = "--exit 3"  # a daemon that dies: reported, then restarted
        comp.par.Start.pulse()
        assert _tick_until(td, comp, ext, lambda: "code 3" in comp.par.Lasterror.eval())
        assert ext.restart_at is not None
        assert _tick_until(td, comp, ext, lambda: log.text.count("fake daemon: failing") >= 2)
    finally:
        ext.Exit()


def test_start_without_the_daemon_installed_is_a_clear_error(built):
    td, comp, ext, _ = built
    comp.par.Daemoncmd.val = "no-such-avatar-bridge"
    comp.par.Start.pulse()
    assert "not found" in comp.par.Lasterror.eval() and ext.proc is None
    comp.par.Daemoncmd.val = "avatar-bridge"
    comp.par.Host.val = "192.168.1.50"
    comp.par.Start.pulse()
    assert "--osc-host 0.0.0.0" in comp.par.Lasterror.eval() and ext.proc is None


def test_rebuild_panel_picks_up_a_new_schema_parameter(tmp_path):
    folder = tmp_path / "touchdesigner"
    shutil.copytree(TD_DIR, folder, ignore=shutil.ignore_patterns("*.toe", "*.tox", "__pycache__"))
    td, comp, ext, _ = _build(folder)
    comp.par.Alphathreshold.val = 0.8
    entries = json.loads((folder / "osc_schema.json").read_text())
    entries.insert(0, {"address": "/bridge/avatar/strength", "type": "f", "min": 0.0, "max": 1.0, "choices": None,
                       "default": 0.6, "load_time": False, "description": "img2img strength."})
    (folder / "osc_schema.json").write_text(json.dumps(entries))
    comp.par.Rebuildpanel.pulse()
    assert comp.par.Avatarstrength.eval() == 0.6 and comp.par.Avatarstrength.page.name == "Avatar"
    assert comp.par.Alphathreshold.eval() == 0.5  # rebuilt from the schema default
    assert comp.par.Host.eval() == "127.0.0.1"  # hand-made pages untouched
    comp.par.Avatarstrength.val = 0.4
    assert _sent(comp)[-1] == ("/bridge/avatar/strength", [0.4])
