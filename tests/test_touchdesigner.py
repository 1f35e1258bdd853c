"""The TouchDesigner operator (touchdesigner/), tested on Linux against a fake ``td`` module.

``tests/fakes/td.py`` takes every operator's parameter list from its docs.derivative.ca
page (two public copies of the documentation, named beside each operator), refuses names
and menu items those pages do not list, gives a taken name the next number, runs
Parameter Execute callbacks once per frame (``td.tick()``), evaluates expressions and
applies CHOP exports. The build script runs against it; the extension and callback files
are the real ones, loaded from disk into the fake DATs as TouchDesigner would.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import socket
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


def _build(folder: Path = TD_DIR, project_folder: str = ""):
    td = fake_td.fresh()
    td.project.folder = project_folder
    result = build_script.build(td=td, folder=str(folder))
    comp = result["comp"]
    ext = comp.ext.AvatarBridgeExt
    ext.clock = Clock()
    td.tick()  # TouchDesigner runs frames after the build: the Parameter Execute DAT starts watching
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


def _ops(td, comp) -> dict:
    return {o.name: o for o in td.created if o.parent() is comp}


# --------------------------------------------------------------------------- schema file


def test_committed_schema_matches_the_daemon():
    committed = json.loads((TD_DIR / "osc_schema.json").read_text(encoding="utf-8"))
    assert committed == json.loads(json.dumps(osc_schema())), (
        "touchdesigner/osc_schema.json is stale: run python touchdesigner/sync_schema.py")
    sync = _load("sync_schema", TD_DIR / "sync_schema.py")
    assert sync.main(["--check"]) == 0


# --------------------------------------------------------------------------- the documented surface


def test_every_operator_type_is_in_the_fake_with_the_same_doc_page():
    for token, page in build_script.DOCS.items():
        assert token in fake_td.DOCS, f"{token} has no documented parameter list in tests/fakes/td.py"
        assert fake_td.DOCS[token].page == page


def test_the_build_against_the_documented_surface_reports_no_missing_names(built):
    _, _, _, result = built
    assert result["missing"] == []


def test_syphon_spout_in_has_no_active_and_the_build_never_sets_one(built):
    td, comp, _, _ = built
    assert "active" not in fake_td.KNOWN_PARS["syphonspoutinTOP"]  # its page: usespoutactivesender, sendername
    assert "active" in fake_td.KNOWN_PARS["syphonspoutoutTOP"]
    assert {"usespoutactivesender", "sendername"} <= fake_td.KNOWN_PARS["syphonspoutinTOP"]
    assert "driver" in fake_td.KNOWN_PARS["videodeviceinTOP"] and "library" not in fake_td.KNOWN_PARS["videodeviceinTOP"]
    comp.par.Transport.val = "ndi"
    td.tick()
    comp.par.Transport.val = "spout"
    td.tick()
    assert comp.par.Lasterror.eval() == ""


def _names_the_build_sets(monkeypatch) -> set[tuple[str, str]]:
    seen: set[tuple[str, str]] = set()
    real = build_script.Builder.set

    def record(self, o, name, value, expr=False):
        if o is not None:
            seen.add((self.tokens.get(id(o), "?"), name))
        return real(self, o, name, value, expr)

    monkeypatch.setattr(build_script.Builder, "set", record)
    build_script.build(td=fake_td.fresh(), folder=str(TD_DIR), save=False)
    return seen


#: Built-in parameters the extension itself touches (operator type, parameter).
EXTENSION_TOUCHES = {("syphonspoutoutTOP", "active"), ("ndioutTOP", "active"), ("ndiinTOP", "active"),
                     ("ndiinTOP", "name"), ("windowCOMP", "performance"), ("textTOP", "text"),
                     ("constantCHOP", "const0value"), ("constantCHOP", "const4value")}


def test_every_name_the_build_and_extension_touch_is_in_the_readme_table_with_its_page(monkeypatch):
    text = (TD_DIR / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)` \| `(\w+)` \| \[([\w_]+)\]\(https://docs\.derivative\.ca/([\w_]+)\)", text, re.M)
    table = {(t, p): page for t, p, page, url in rows}
    assert rows and all(page == url for _, _, page, url in rows)
    touched = _names_the_build_sets(monkeypatch) | EXTENSION_TOUCHES
    for token, name in sorted(touched):
        name = re.sub(r"^const\d", "const0", name)
        assert (token, name) in table, f"{token}.par.{name} is not in the table in touchdesigner/README.md"
        assert table[(token, name)] == fake_td.DOCS[token].page
        assert name in fake_td.KNOWN_PARS[token]
    types = dict(re.findall(r"^\| `(\w+)` \| \[\w+\]\(https://docs\.derivative\.ca/(\w+)\)", text, re.M))
    assert types == build_script.DOCS  # every operator type, with its page


def test_create_with_a_taken_name_gives_the_next_number():
    td = fake_td.fresh()
    project = td.op("/project1")
    names = [project.create(td.nullTOP, n).name for n in ("out", "out", "out", "out1", "null7", "null7")]
    assert names == ["out", "out1", "out2", "out3", "null7", "null8"]


def test_a_menu_item_its_page_does_not_list_is_refused():
    td = fake_td.fresh()
    window = td.op("/project1").create(td.windowCOMP, "w")
    b = build_script.Builder(td, str(TD_DIR))
    b.tokens[id(window)] = "windowCOMP"
    assert b.set(window, "size", "custom") and not b.set(window, "size", "full")
    assert "windowCOMP.par.size = 'full' refused" in b.missing[0] and "Window_COMP" in b.missing[0]


def test_parameter_execute_fires_once_a_frame_never_inside_the_assignment(built):
    td, comp, _, _ = built
    before = len(_sent(comp))
    comp.par.Threshold.val = 0.6
    comp.par.Threshold.val = 0.7
    assert len(_sent(comp)) == before  # nothing yet: the callback runs on the next frame
    comp.par.Reload.pulse()
    assert len(_sent(comp)) == before
    td.tick()
    assert [m for m in _sent(comp)[before:] if m[0] != "/bridge/ping"] == [
        ("/bridge/reload", []), ("/bridge/alpha/threshold", [0.7])]
    td.tick()
    assert not any(a == "/bridge/alpha/threshold" for a, _ in _sent(comp)[before + 2:])


# --------------------------------------------------------------------------- the operator's shape


def test_input_0_takes_any_top_and_the_camera_when_nothing_is_wired(built):
    td, comp, _, _ = built
    ops = _ops(td, comp)
    assert ops["camera"].OPType == "videodeviceinTOP" and ops["in1"].OPType == "inTOP"
    assert {("camera", "source", 0), ("in1", "source", 1), ("source", "to_daemon_fit", 0),
            ("to_daemon_fit", "to_daemon", 0), ("to_daemon", "spout_to_daemon", 0)} <= _edges(td)
    assert [c.index for c in comp.inputConnectors] == [0, 1]  # in1, in2 (alphanumeric)
    assert ops["source"].par.index.eval() == 0  # nothing wired: the camera
    movie = td.op("/project1").create(td.moviefileinTOP, "my_clip")
    movie.outputConnectors[0].connect(comp.inputConnectors[0])
    assert ops["source"].par.index.eval() == 1  # a TOP wired into input 0 replaces the camera
    comp.par.Source.val = "camera"
    assert ops["source"].par.index.eval() == 0
    fit = ops["to_daemon_fit"]
    assert (fit.par.format.eval(), fit.par.outputresolution.eval(), fit.par.fit.eval()) == ("rgba8fixed", "custom", "fitoutside")
    assert (fit.par.resolutionw.eval(), fit.par.resolutionh.eval()) == (512, 512)


def test_output_0_is_the_rgba_avatar_output_1_the_composite_output_2_the_status_chop(built):
    td, comp, _, _ = built
    ops = _ops(td, comp)
    assert [o.name for o in comp._io("out")] == ["out1", "out2", "out3"]
    assert (ops["out1"].OPType, ops["out2"].OPType, ops["out3"].OPType) == ("outTOP", "outTOP", "outCHOP")
    assert {("spout_from_daemon", "from_daemon", 0), ("ndi_from_daemon", "from_daemon", 1),
            ("from_daemon", "avatar", 0), ("avatar", "out1", 0),
            ("from_daemon", "composite", 0), ("background", "composite", 1), ("composite", "out", 0),
            ("out", "out2", 0), ("out", "obs_out", 0), ("status", "out3", 0)} <= _edges(td)
    assert {("bg_movie", "background", 0), ("bg_color", "background", 1), ("in2", "background", 2)} <= _edges(td)
    assert comp.par.Background.menuNames == ["movie", "color", "input"]  # the switch's input order
    assert set(ops["out3"].chans_dict()) == set(build_script.STATUS_CHANNELS)


def test_composite_and_stage_window_have_an_explicit_resolution(built):
    td, comp, ext, _ = built
    ops = _ops(td, comp)
    comp_top = ops["composite"]
    assert comp_top.par.outputresolution.eval() == "custom"
    assert (comp_top.par.resolutionw.eval(), comp_top.par.resolutionh.eval()) == (1920, 1080)
    window = ops["stage_window"]
    assert window.par.size.eval() == "custom" and (window.par.winw.eval(), window.par.winh.eval()) == (1920, 1080)
    assert window.par.winop.eval() == ops["out"].path
    comp.par.Outw.val, comp.par.Outh.val = 1280, 720
    assert (comp_top.par.resolutionw.eval(), window.par.winh.eval()) == (1280, 720)
    comp.par.Open.pulse()
    td.tick()
    assert window.par.performance.pulses == 1 and window.par.winopen.pulses == 0  # Perform mode


def test_every_expression_evaluates(built):
    td, comp, _, _ = built
    exprs = [(o.path, p) for o in td.created for p in o.par._pars.values() if p.mode == fake_td.ParMode.EXPRESSION]
    assert len(exprs) > 20
    for path, par in exprs:
        par.eval()  # raises on a missing parameter or a typo


def test_transport_switches_spout_and_ndi_and_names_the_ndi_source(built):
    td, comp, ext, _ = built
    ops = _ops(td, comp)
    assert comp.par.Transport.menuNames == ["spout", "ndi"]  # from_daemon: 0 = Spout In, 1 = NDI In
    assert ops["from_daemon"].par.index.eval() == 0
    actives = lambda: [ops[n].par.active.eval() for n in ("spout_to_daemon", "ndi_to_daemon", "ndi_from_daemon")]  # noqa: E731
    assert actives() == [True, False, False]
    comp.par.Transport.val = "ndi"
    td.tick()
    assert actives() == [False, True, True] and ops["from_daemon"].par.index.eval() == 1
    host = socket.gethostname().split(".")[0].upper()
    assert ops["ndi_from_daemon"].par.name.eval() == f"{host} (AvatarBridge)"  # MACHINE (SourceName)
    comp.par.Ndisource.val = "GPUBOX (AvatarBridge)"
    td.tick()
    assert ops["ndi_from_daemon"].par.name.eval() == "GPUBOX (AvatarBridge)"
    assert ops["ndi_from_daemon"].par.extraips.eval() == ""
    comp.par.Ndisource.val = ""
    comp.par.Host.val = "192.168.1.50"
    td.tick()
    assert ops["ndi_from_daemon"].par.name.eval() == "" and "NDI source" in comp.par.Lasterror.eval()


def test_dats_load_the_callback_files_and_the_extension_is_initialised(built):
    td, comp, ext, _ = built
    for dat_name, filename in build_script.DAT_FILES.items():
        dat = comp.op(dat_name)
        assert dat.text == (TD_DIR / filename).read_text(encoding="utf-8")
        assert dat.par.file.eval() == str(TD_DIR) + "/" + filename and dat.par.syncfile.eval() is True
    assert comp.op("oscin").par.callbacks.eval() == "osc_in_callbacks"
    assert comp.par.ext0object.eval() == "op('./AvatarBridgeExt').module.AvatarBridgeExt(me)"
    assert type(ext).__name__ == "AvatarBridgeExt" and comp.OnOSC == ext.OnOSC  # promoted
    assert comp.par.reinitextensions.pulses == 0  # initializeExtensions(), the documented call


def test_build_saves_the_tox_only(built):
    td, comp, _, result = built
    assert comp.saved == [str(TD_DIR / "AvatarBridge.tox")] == result["saved"]
    assert td.project.saved == []  # project.save may ask before overwriting: never called


def test_a_second_build_replaces_the_first_and_keeps_the_name(built):
    td, comp, ext, _ = built
    stopped = []
    ext.Exit = lambda: stopped.append(True)
    result = build_script.build(td=td, folder=str(TD_DIR), save=False)
    new = result["comp"]
    assert new is not comp and new.path == "/project1/avatar_bridge" and comp in td.destroyed
    assert list(td.op("/project1").children) == ["avatar_bridge"] and stopped == [True]
    td.tick()
    new.par.Threshold.val = 0.3
    td.tick()
    assert _sent(new)[-1] == ("/bridge/alpha/threshold", [0.3])


def test_a_build_that_fails_half_way_leaves_the_old_comp_and_no_half_built_one(built, monkeypatch):
    td, comp, ext, _ = built

    def broken(b, new_comp):
        b.create(new_comp, "nullTOP", "first", 0, 0)
        raise RuntimeError("disk full")

    monkeypatch.setattr(build_script, "build_network", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        build_script.build(td=td, folder=str(TD_DIR), save=False)
    assert list(td.op("/project1").children) == ["avatar_bridge"] and td.op("/project1/avatar_bridge") is comp
    assert comp not in td.destroyed and comp.ext.AvatarBridgeExt is ext


def test_missing_names_on_a_td_build_are_reported_not_fatal(monkeypatch):
    monkeypatch.setitem(fake_td.KNOWN_PARS, "syphonspoutoutTOP", {"active"})
    td = fake_td.fresh()
    del td.ndiinTOP  # a build without the NDI In TOP
    result = build_script.build(td=td, folder=str(TD_DIR), save=False)
    missing = "\n".join(result["missing"])
    assert "syphonspoutoutTOP.par.sendername" in missing and "Syphon_Spout_Out_TOP" in missing
    assert "operator type ndiinTOP" in missing and "NDI_In_TOP" in missing
    assert ("spout_from_daemon", "from_daemon", 0) in _edges(td)  # everything else is still built
    assert result["comp"].ext.AvatarBridgeExt is not None


# --------------------------------------------------------------------------- panel


def test_every_schema_parameter_is_on_the_panel_with_its_range(built):
    td, comp, ext, _ = built
    schema = {e["address"]: e for e in panel.read_schema(str(TD_DIR))}  # what the panel is built from
    specs = {s.address: s for s in ext.specs}
    assert set(specs) == set(schema) - {panel.PING}
    for address, spec in specs.items():
        e = schema[address]
        par = getattr(comp.par, spec.name)
        assert par.page.name == spec.page
        if e["type"] == "f":
            assert par.style == "Float" and (par.min, par.max) == (e["min"], e["max"])
            assert par.default == e["default"]
        elif e["type"] == "i" and (e["min"], e["max"]) != (0, 1):
            assert par.style == "Int" and par.default == e["default"]
        elif e["type"] in ("T", "i"):
            assert par.style == "Toggle" and par.default == bool(e["default"])
        elif e["choices"]:
            assert par.style == "Menu" and par.menuNames == e["choices"] and par.default == e["default"]
        elif e["type"] == "s":
            assert par.style in ("Str", "Menu")
        else:
            assert par.style == "Pulse"
    on_schema_pages = {p.name for p in comp.customPars if p.page.name not in panel.FIXED_PAGES}
    assert on_schema_pages == {s.name for s in ext.specs}  # no read-only twin of each parameter
    on_fixed_pages = {p.name for p in comp.customPars if p.page.name in panel.FIXED_PAGES}
    assert on_fixed_pages == set(build_script.FIXED_PARS)


def test_parameter_names_are_short_and_the_labels_have_the_words(built):
    _, comp, ext, _ = built
    names = [p.name for p in comp.customPars]
    assert all(re.fullmatch(r"[A-Z][a-z0-9]*", n) for n in names) and len(set(names)) == len(names)
    assert max(len(n) for n in names) <= 14
    by_address = {s.address: s for s in ext.specs}
    cn = by_address["/bridge/avatar/controlnet_conditioning_scale"]
    assert (cn.name, cn.label) == ("Cncondscale", "Controlnet conditioning scale")
    assert by_address["/bridge/alpha/threshold"].name == "Threshold"
    assert {by_address["/bridge/alpha/model"].name, by_address["/bridge/pose/model"].name} == {"Model", "Posemodel"}


def test_about_page_has_the_version_and_opens_the_help(built):
    td, comp, _, _ = built
    version = re.search(r'^version\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    assert comp.par.Version.eval() == version and comp.par.Version.readOnly
    assert [p.name for p in comp.customPages][:5] == ["Status", "Bridge", "Daemon", "MIDI", "About"]
    comp.par.Help.pulse()
    td.tick()
    assert td.ui.viewed == [str(TD_DIR / "README.md")] and (TD_DIR / "README.md").exists()


def test_paths_are_relative_to_the_project_folder():
    td, comp, ext, _ = _build(project_folder=str(ROOT))
    assert (comp.par.Folder.eval(), comp.par.Presetsdir.eval()) == ("touchdesigner", "presets")
    assert comp.par.Midimap.eval() == "touchdesigner/midi_map_nanokontrol2.tsv"
    assert comp.par.Docs.eval() == "touchdesigner/README.md"
    # what TouchDesigner reads (DAT File, relative to project.folder) and what Python opens
    assert comp.op("AvatarBridgeExt").par.file.eval() == "touchdesigner/avatar_bridge_ext.py"
    assert ext.folder == str(TD_DIR) and comp.par.Preset.menuNames == list_presets()
    comp.op("midi_map").text = ""
    comp.par.Loadmap.pulse()
    td.tick()
    assert len(ext.MidiRows()) == 19 and comp.par.Lasterror.eval() == ""
    comp.par.Help.pulse()
    td.tick()
    assert td.ui.viewed == [str(TD_DIR / "README.md")]
    # a project elsewhere: absolute paths
    _, other, _, _ = _build(project_folder="/somewhere/else")
    assert other.par.Folder.eval() == str(TD_DIR)


def test_preset_menu_lists_the_presets_folder_and_starts_on_td_over(built):
    td, comp, ext, _ = built
    assert comp.par.Preset.menuNames == list_presets()
    assert comp.par.Preset.eval() == "td-over"
    comp.par.Preset.val = "default"
    td.tick()
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
    specs = panel.specs_from_schema(entries, reserved=["Gain"])
    names = [s.name for s in specs]
    assert names == ["Ab", "Fxab", "Statusgain"]  # taken: the stage in front
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
            before = par.eval()
            par.val = low + (high - low) * 0.37
            if par.eval() == before:  # an integer slider whose default sits at 37 %: move it all the way
                par.val = high if before != high else low
    td.tick()  # never connected: pings
    _osc(td, comp, "/bridge/status/heartbeat", 1)
    ext.clock.t += 10
    td.tick()  # heartbeat lost: pings again
    _osc(td, comp, "/bridge/status/heartbeat", 1)  # back: re-sends the changes
    comp.par.Resync.pulse()
    td.midi(comp.op("midi_direct"), "c64", 127.0)
    td.midi(comp.op("midi_direct"), "c16", 100.0)
    td.tick()


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


def test_prompt_change_sends_the_string_through_the_osc_out_dat(built):
    td, comp, ext, _ = built
    par = getattr(comp.par, ext.by_address["/bridge/avatar/prompt"].name)
    assert par.style == "Str" and par.name == "Prompt"
    par.val = "a bronze statue, studio light"
    td.tick()
    assert _sent(comp)[-1] == ("/bridge/avatar/prompt", ["a bronze statue, studio light"])


def test_slider_change_sends_float_and_pulse_sends_no_argument(built):
    td, comp, _, _ = built
    comp.par.Threshold.val = 0.7
    td.tick()
    comp.par.Refine.val = False
    td.tick()
    comp.par.Refineradius.val = 9.6
    td.tick()
    comp.par.Reload.pulse()
    td.tick()
    assert [m for m in _sent(comp) if m[0] != "/bridge/ping"][-4:] == [
        ("/bridge/alpha/threshold", [0.7]), ("/bridge/alpha/refine", [False]),
        ("/bridge/alpha/refine_radius", [10]), ("/bridge/reload", [])]


def test_send_whole_panel_does_not_undo_the_presets_premultiplied_alpha(built):
    td, comp, _, _ = built
    assert comp.par.Alphamode.eval() == "straight"  # the schema default on the panel
    comp.par.Threshold.val = 0.6
    td.tick()
    before = len(_sent(comp))
    comp.par.Resync.pulse()
    td.tick()
    resent = [m for m in _sent(comp)[before:] if m[0] != "/bridge/ping"]
    assert resent == [("/bridge/preset", ["td-over"]), ("/bridge/alpha/threshold", [0.6])]
    assert not any(a == "/bridge/alpha/alpha_mode" for a, _ in resent)


# --------------------------------------------------------------------------- status back from the daemon


def _daemon_replies() -> list[str]:
    """Addresses the daemon's real StatusSender puts on the wire (captured on a UDP socket)."""
    import socket
    import types

    from pythonosc.osc_message import OscMessage

    from bridge.osc.status import StatusSender

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(30.0)
    stats = types.SimpleNamespace(state="live", fps=30.0, latency_ms=40.0, dropped=0, last_error="boom")
    sender = StatusSender("127.0.0.1", sock.getsockname()[1], lambda: stats, lambda: {"malformed": 0, "ignored": 0, "coalesced": 0})
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


def test_status_messages_fill_the_panel_the_status_chop_and_the_text_top(built):
    td, comp, _, _ = built
    status = comp.op("out3")
    assert status.chans_dict() == {"fps": 0.0, "latency": 0.0, "dropped": 0.0, "state": 0.0, "connected": 0.0}
    _osc(td, comp, "/bridge/status/heartbeat", 1)
    _osc(td, comp, "/bridge/status/state", "live")
    _osc(td, comp, "/bridge/status/fps", 29.97)
    _osc(td, comp, "/bridge/status/latency_ms", 41.52)
    _osc(td, comp, "/bridge/status/dropped", 3)
    _osc(td, comp, "/bridge/error", "/bridge/alpha/threshold: must be <= 1.0")
    assert comp.par.Connected.eval() is True
    assert (comp.par.State.eval(), comp.par.Fps.eval(), comp.par.Latency.eval(), comp.par.Dropped.eval()) == \
        ("live", 29.97, 41.5, 3)
    assert status.chans_dict() == {"fps": 29.97, "latency": 41.5, "dropped": 3.0, "state": 3.0, "connected": 1.0}
    assert status["state"].eval() == panel.STATE_CODES["live"]
    assert comp.par.Lasterror.eval() == "/bridge/alpha/threshold: must be <= 1.0"
    text = comp.op("status_text").par.text.eval()
    assert "LIVE" in text and "30.0 fps" in text and "42 ms" in text and "dropped 3" in text
    assert "last error: /bridge/alpha/threshold" in text
    _osc(td, comp, "/bridge/status/error", "")  # no error any more: the last one stays shown
    assert comp.par.Lasterror.eval().startswith("/bridge/alpha/threshold")
    for _ in range(2):
        comp.ext.AvatarBridgeExt.clock.t += 4.0
        td.tick()
    assert status["connected"].eval() == 0.0 and status["state"].eval() == 0.0


def test_ack_shows_compactly_in_the_last_applied_line_and_the_acks_table(built):
    td, comp, _, _ = built
    comp.par.Threshold.val = 0.7
    td.tick()
    _osc(td, comp, "/bridge/ack/alpha/threshold", 0.65)
    assert comp.par.Lastack.eval() == "alpha/threshold = 0.65" and comp.par.Lastack.readOnly
    _osc(td, comp, "/bridge/ack/alpha/alpha_mode", "premultiplied")
    _osc(td, comp, "/bridge/ack/preset", "td-over")
    assert comp.par.Lastack.eval() == "preset = td-over"
    assert comp.par.Threshold.eval() == 0.7  # the slider keeps what the performer asked for
    rows = [r.split("\t") for r in comp.op("acks").text.splitlines()]
    assert ["/bridge/alpha/threshold", "0.7", "0.65"] in rows
    assert ["/bridge/alpha/alpha_mode", "", "premultiplied"] in rows
    comp.par.Acks.pulse()
    td.tick()
    assert comp.op("acks").viewers == 1


def test_lost_heartbeat_pings_and_a_restarted_daemon_gets_the_changes_again(built):
    td, comp, ext, _ = built
    _osc(td, comp, "/bridge/status/heartbeat", 41)
    comp.par.Softness.val = 0.3
    td.tick()
    ext.clock.t += 4.0
    td.tick()
    assert comp.par.Connected.eval() is False and comp.par.State.eval() == "no heartbeat"
    assert _sent(comp)[-1] == ("/bridge/ping", [])
    assert "no heartbeat" in comp.op("status_text").par.text.eval()
    before, cooks = len(_sent(comp)), comp.op("spout_from_daemon").cooks
    _osc(td, comp, "/bridge/status/heartbeat", 1)  # the daemon came back (restarted)
    assert _sent(comp)[before:] == [("/bridge/preset", ["td-over"]), ("/bridge/alpha/softness", [0.3])]
    assert comp.op("spout_from_daemon").cooks == cooks + 1  # Spout In (no Active): a forced cook
    td.tick()
    assert "reconnect" in comp.op("daemon_log").text


def test_a_restarted_daemon_reopens_the_ndi_receiver(built):
    td, comp, ext, _ = built
    comp.par.Transport.val = "ndi"
    td.tick()
    ndi_in = comp.op("ndi_from_daemon")
    _osc(td, comp, "/bridge/status/heartbeat", 5)
    _osc(td, comp, "/bridge/status/heartbeat", 1)  # counter went back: restarted
    assert ndi_in.par.active.eval() is False
    ext.clock.t += 0.6
    td.tick()
    assert ndi_in.par.active.eval() is True


def test_heartbeat_counter_going_back_means_a_restart(built):
    td, comp, ext, _ = built
    _osc(td, comp, "/bridge/status/heartbeat", 7)
    comp.par.Feather.val = 2.5
    td.tick()
    _osc(td, comp, "/bridge/status/heartbeat", 8)
    before = len(_sent(comp))
    _osc(td, comp, "/bridge/status/heartbeat", 1)  # restarted within the timeout
    assert ("/bridge/alpha/feather", [2.5]) in _sent(comp)[before:]


# --------------------------------------------------------------------------- MIDI


def test_midi_chops_name_their_channels_as_the_docs_say(built):
    td, comp, _, _ = built
    direct, device = comp.op("midi_direct"), comp.op("midi_device")
    assert (direct.par.prefix.eval(), direct.par.controlname.eval(), direct.par.controltype.eval()) == ("", "c", "index")
    assert (direct.par.controlind.eval(), direct.par.norm.eval(), direct.par.channel.eval()) == ("0-127", "off", "1")
    assert direct.par.id.eval() == device.par.id.eval() == comp.par.Mididevice.eval() == 1
    assert (device.par.sliders.eval(), device.par.buttons.eval()) == ("s[1-32]", "b[1-32]")
    out = comp.op("midi_out")
    assert out.export is True and out.par.exportmethod.eval() == "autoname"
    assert out.par.autoexportroot.eval() is td.op("/project1")
    assert {("midi_device", "midi_merge", 0), ("midi_direct", "midi_merge", 1), ("midi_merge", "midi_scaled", 0),
            ("midi_scaled", "midi_out", 0)} <= _edges(td)


def test_sample_midi_map_is_loaded_and_every_row_targets_the_panel(built):
    _, comp, ext, _ = built
    rows = ext.MidiRows()
    controls = [r.control for r in rows]
    assert controls[:8] == [f"c{cc}" for cc in range(8)]  # nanoKONTROL2 faders 1-8 (CC 0-7)
    assert controls[8:14] == [f"c{cc}" for cc in range(16, 22)]  # knobs 1-6 (CC 16-21)
    assert all(r.address in ext.by_address for r in rows)
    assert comp.par.Lasterror.eval() == ""


def test_midi_reaches_the_parameters_by_chop_export_and_is_sent(built):
    td, comp, _, _ = built
    direct = comp.op("midi_direct")
    td.midi(direct, "c0", 0.0)  # fader 1 down -> strength at its schema minimum
    td.midi(direct, "c16", 127 * 0.25)  # knob 1 -> threshold 0..1
    td.midi(direct, "c18", 63.5)  # knob 3 -> feather over the row's 0..10
    td.midi(direct, "c32", 0.0)  # S1 -> refine off
    td.midi(direct, "c48", 127.0)  # M1 -> bypass (int 0/1 in the schema)
    td.tick()
    out = comp.op("midi_out").chans_dict()
    assert out["avatar_bridge:Threshold"] == 0.25 and out["avatar_bridge:Bypass"] == 1.0
    assert comp.par.Threshold.mode == fake_td.ParMode.EXPORT and comp.par.Threshold.eval() == 0.25
    sent = dict(m for m in _sent(comp) if m[0] != "/bridge/ping")
    assert sent["/bridge/avatar/strength"] == [0.1] and sent["/bridge/alpha/threshold"] == [0.25]
    assert sent["/bridge/alpha/feather"] == [5.0] and sent["/bridge/alpha/refine"] == [False]
    assert sent["/bridge/bypass"] == [1]
    td.midi(direct, "c16", 127.0)
    td.tick()
    assert _sent(comp)[-1] == ("/bridge/alpha/threshold", [1.0]) and comp.par.Threshold.eval() == 1.0
    before = len(_sent(comp))
    for value in (127.0, 127.0, 0.0):  # R1 held then released: one reload
        td.midi(direct, "c64", value)
        td.tick()
    assert [m for m in _sent(comp)[before:] if m[0] != "/bridge/ping"] == [("/bridge/reload", [])]


def test_midi_leaves_a_bound_or_expression_parameter_alone(built):
    td, comp, _, _ = built
    comp.par.Threshold.expr = "0.3"  # the user's own expression
    comp.par.Softness.bindExpr = "me.par.Feather"  # and a bind
    td.midi(comp.op("midi_direct"), "c16", 127.0)
    td.midi(comp.op("midi_direct"), "c17", 127.0)
    td.tick()
    assert comp.par.Threshold.mode == fake_td.ParMode.EXPRESSION and comp.par.Threshold.eval() == 0.3
    assert comp.par.Softness.mode == fake_td.ParMode.BIND
    assert not any(n.endswith((":Threshold", ":Softness")) for n in comp.op("midi_out").chans_dict())
    assert "MIDI leaves it alone" in comp.par.Midistatus.eval()
    assert ("/bridge/alpha/threshold", [1.0]) not in _sent(comp)


def test_device_mapper_sliders_drive_a_mapped_parameter(built):
    td, comp, _, _ = built
    comp.op("midi_map").text = "control\taddress\tmin\tmax\tinmax\tnote\ns1\t/bridge/alpha/threshold\t\t\t1\tslider 1\n"
    td.midi(comp.op("midi_device"), "s1", 0.75)
    td.tick()
    assert _sent(comp)[-1] == ("/bridge/alpha/threshold", [0.75])


def test_midi_learn_maps_the_next_control_and_saves_the_map(built, tmp_path):
    td, comp, ext, _ = built
    direct = comp.op("midi_direct")
    comp.par.Midimap.val = str(tmp_path / "my_map.tsv")
    comp.par.Learntarget.val = "Temporal"
    comp.par.Learn.pulse()
    td.tick()
    assert "move a knob" in comp.par.Midistatus.eval()
    td.midi(direct, "c22", 100.0)  # knob 7 moved: learned, not sent
    assert not any(a == "/bridge/alpha/temporal" for a, _ in _sent(comp))
    td.midi(direct, "c22", 127.0)
    td.tick()
    assert _sent(comp)[-1] == ("/bridge/alpha/temporal", [0.95])
    comp.par.Savemap.pulse()
    td.tick()
    saved, problems = panel.parse_midi_map((tmp_path / "my_map.tsv").read_text())
    assert problems == [] and ("c22", "/bridge/alpha/temporal", 127.0) in [(r.control, r.address, r.inmax) for r in saved]
    comp.op("midi_map").text = ""
    comp.par.Loadmap.pulse()
    td.tick()
    assert any(r.control == "c22" for r in ext.MidiRows())


def test_a_bad_midi_row_is_reported_and_the_others_still_work(built):
    td, comp, _, _ = built
    comp.op("midi_map").text = ("control\taddress\tmin\tmax\tinmax\tnote\n"
                                "s1\t/bridge/alpha/threshold\t\t\t1\tfader\n"
                                "s2\tthreshold\t\t\t1\ttypo\n"
                                "s3\t/bridge/alpha/softness\tlow\t\t1\ttypo\n")
    td.midi(comp.op("midi_device"), "s1", 0.75)
    td.tick()
    assert _sent(comp)[-1] == ("/bridge/alpha/threshold", [0.75])
    assert "MIDI map row" in comp.par.Lasterror.eval()
    td.tick()
    assert comp.op("daemon_log").text.count("MIDI map row") == 2


# --------------------------------------------------------------------------- daemon process


def test_daemon_command_is_accepted_by_the_daemon_parser(built):
    td, comp, ext, _ = built
    argv = ext.DaemonCommand()
    assert argv[:2] == ["avatar-bridge", "run"]
    args = build_parser().parse_args(argv[1:])
    assert (args.source, args.sink, args.preset, args.device) == ("spout:TDOut", "spout:AvatarBridge", "td-over", "cuda")
    assert (args.osc_port, args.osc_reply) == (9000, "127.0.0.1:9001")
    comp.par.Transport.val = "ndi"
    comp.par.Replyport.val = 9101
    args = build_parser().parse_args(ext.DaemonCommand()[1:])
    assert (args.source, args.sink, args.osc_reply) == ("ndi:TDOut", "ndi:AvatarBridge", "127.0.0.1:9101")


def _tick_until(td, comp, ext, predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ext.clock.t += 0.1
        td.tick()
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_start_shows_the_log_stop_ends_it_and_a_crash_restarts(built):
    td, comp, ext, _ = built
    comp.par.Cmd.val = f'"{sys.executable}" "{FAKES / "fake_daemon.py"}"'
    comp.par.Start.pulse()
    td.tick()
    try:
        assert comp.par.Daemonrunning.eval() is True
        log = comp.op("daemon_log")
        assert _tick_until(td, comp, ext, lambda: "fake daemon: live" in log.text)
        assert "--preset td-over" in log.text and "--source spout:TDOut" in log.text
        comp.par.Stop.pulse()
        assert _tick_until(td, comp, ext, lambda: not ext.DaemonRunning() and ext.proc is None)
        assert comp.par.Daemonrunning.eval() is False and "stopped" in log.text
        comp.par.Args.val = "--exit 3"  # a daemon that dies: reported, then restarted
        comp.par.Start.pulse()
        assert _tick_until(td, comp, ext, lambda: "code 3" in comp.par.Lasterror.eval())
        assert ext.restart_at is not None
        assert _tick_until(td, comp, ext, lambda: log.text.count("fake daemon: failing") >= 2)
    finally:
        ext.Exit()


def test_start_without_the_daemon_installed_is_a_clear_error(built):
    td, comp, ext, _ = built
    comp.par.Cmd.val = "no-such-avatar-bridge"
    comp.par.Start.pulse()
    td.tick()
    assert "not found" in comp.par.Lasterror.eval() and ext.proc is None
    comp.par.Cmd.val = "avatar-bridge"
    comp.par.Host.val = "192.168.1.50"
    comp.par.Start.pulse()
    td.tick()
    assert "--osc-host 0.0.0.0" in comp.par.Lasterror.eval() and ext.proc is None


def test_rebuild_panel_picks_up_a_new_schema_parameter(tmp_path):
    folder = tmp_path / "touchdesigner"
    shutil.copytree(TD_DIR, folder, ignore=shutil.ignore_patterns("*.toe", "*.tox", "__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    td, comp, ext, _ = _build(folder)
    comp.par.Threshold.val = 0.8
    entries = json.loads((folder / "osc_schema.json").read_text())
    entries.insert(0, {"address": "/bridge/avatar/grain", "type": "f", "min": 0.0, "max": 1.0, "choices": None,
                       "default": 0.6, "load_time": False, "description": "Film grain."})
    (folder / "osc_schema.json").write_text(json.dumps(entries))
    comp.par.Rebuild.pulse()
    td.tick()
    assert comp.par.Grain.eval() == 0.6 and comp.par.Grain.page.name == "Avatar"
    assert comp.par.Threshold.eval() == 0.5  # rebuilt from the schema default
    assert comp.par.Host.eval() == "127.0.0.1"  # hand-made pages untouched
    td.tick()
    comp.par.Grain.val = 0.4
    td.tick()
    assert _sent(comp)[-1] == ("/bridge/avatar/grain", [0.4])
