"""Schema -> TouchDesigner panel, OSC arguments, MIDI scaling, presets, daemon command.

Plain Python shared by ``build_avatar_bridge.py`` (run once in TouchDesigner's Textport)
and the control COMP's extension (``avatar_bridge_ext.py``). It never imports
TouchDesigner: functions that make parameters take the COMP as an argument and only call
the documented Python API on it (``appendCustomPage``, ``Page.appendFloat`` ...), so the
tests run it on Linux against a fake ``td`` module.

Where the panel comes from: ``osc_schema.json`` next to this file, written by
``python touchdesigner/sync_schema.py`` from the daemon's ``bridge.osc.schema.osc_schema()``
(a test fails when the two differ). Each entry has ``address, type, min, max, choices,
default, load_time, description``; ``type`` is the OSC type tag the daemon expects
(``f`` float32, ``i`` int32, ``s`` string, ``T`` boolean, ``""`` no argument).

TouchDesigner rules this module follows (docs.derivative.ca, "Custom Parameters" and
"Page Class"): a custom parameter name starts with one upper-case letter followed by
lower-case letters or digits; ``Page.append*`` returns a ParGroup whose first item is the
new ``Par``; ``Par.min/max`` are the hard limits applied when ``clampMin/clampMax`` are on,
``Par.normMin/normMax`` the slider's displayed range; ``Par.menuNames/menuLabels`` hold a
menu's items.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
from dataclasses import dataclass, field
from typing import Any, Iterable

SCHEMA_FILE = "osc_schema.json"
PREFIX = "/bridge"
PRESET = PREFIX + "/preset"
BYPASS = PREFIX + "/bypass"
RELOAD = PREFIX + "/reload"
PING = PREFIX + "/ping"
ACK_PREFIX = PREFIX + "/ack/"

#: Custom pages the build script makes by hand (never generated from the schema).
FIXED_PAGES = ("Status", "Bridge", "Daemon", "MIDI", "About")
#: Page that holds the daemon-wide controls from the schema (preset, bypass, reload).
CONTROLS_PAGE = "Controls"
#: Words shortened in a parameter name longer than ``SHORT_NAME_MAX`` letters (palette style:
#: short names on pages, the full words in the label).
ABBREVIATIONS = {
    "controlnet": "cn", "conditioning": "cond", "similarity": "sim", "threshold": "thresh",
    "negative": "neg", "adapter": "a", "reference": "ref", "acceleration": "accel",
    "channels": "ch", "guidance": "guide", "refine": "ref", "confidence": "conf",
}
SHORT_NAME_MAX = 12
#: ``state`` status channel: the daemon's state as a number (bridge/engine.py states).
STATE_CODES = {"not connected": 0, "no heartbeat": 0, "stopped": 0, "starting": 1, "loading": 2, "live": 3,
               "error": 4}
#: A preset name the daemon accepts (same rule as ``bridge.presets.NAME_RE``).
PRESET_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
#: The preset the panel selects first: premultiplied alpha, what the Over TOP expects.
DEFAULT_PRESET = "td-over"


@dataclass
class ParamSpec:
    """One panel parameter generated from one schema entry.

    ``kind`` is the TouchDesigner parameter style: ``float``, ``int``, ``toggle``,
    ``menu``, ``str`` or ``pulse``. ``osc_type`` is the schema's type tag, which decides
    the OSC argument sent (a toggle made from an ``i`` 0..1 entry sends an int). ``name``
    is short (``Strength``, ``Cncondscale``); ``label`` has the words.
    """

    name: str
    address: str
    osc_type: str
    kind: str
    page: str
    label: str
    min: float | int | None = None
    max: float | int | None = None
    default: Any = None
    choices: list[str] | None = None
    load_time: bool = False
    description: str = ""

    @property
    def numeric(self) -> bool:
        """True for sliders and toggles (what a MIDI knob, fader or button can drive)."""
        return self.kind in ("float", "int", "toggle", "menu")


def read_schema(folder: str) -> list[dict[str, Any]]:
    """The schema entries from ``<folder>/osc_schema.json``.

    Raises:
        OSError: the file is missing (run ``python touchdesigner/sync_schema.py``).
        ValueError: the file is not a JSON list of entries with an ``address``.
    """
    with open(os.path.join(folder, SCHEMA_FILE), encoding="utf-8") as f:
        entries = json.load(f)
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "address" in e for e in entries):
        raise ValueError(f"{SCHEMA_FILE} is not a list of schema entries: regenerate it with sync_schema.py")
    return entries


def td_name(text: str) -> str:
    """A valid TouchDesigner custom parameter name for ``text``.

    ``alpha/refine_radius`` -> ``Alpharefineradius``: letters and digits only, the first
    letter upper-case and the rest lower-case (the rule TouchDesigner enforces on custom
    parameter names). A name that would start with a digit gets a ``P`` in front.
    """
    cleaned = re.sub(r"[^A-Za-z0-9]", "", text).lower()
    if not cleaned:
        cleaned = "p"
    if cleaned[0].isdigit():
        cleaned = "p" + cleaned
    return cleaned[0].upper() + cleaned[1:]


def short_name(stage: str, param: str, taken: set[str]) -> str:
    """A short, unused custom parameter name for ``param`` of ``stage`` ('' for daemon-wide).

    ``guidance_scale`` -> ``Guidancescale``; longer than ``SHORT_NAME_MAX`` letters, its
    words are shortened (``controlnet_conditioning_scale`` -> ``Cncondscale``). A name
    already taken (another stage's ``model``, a fixed parameter) gets the stage in front
    (``Posemodel``), then a number.
    """
    name = td_name(param)
    if len(name) > SHORT_NAME_MAX:
        name = td_name("".join(ABBREVIATIONS.get(w.lower(), w) for w in re.split(r"[_\W]+", param)))
    if name in taken and stage:
        name = td_name(stage + name)
    return _unique(name, taken)


def _unique(name: str, taken: set[str]) -> str:
    """``name`` or ``name2``, ``name3`` ... whichever is not in ``taken``; adds it to ``taken``."""
    candidate, n = name, 2
    while candidate in taken:
        candidate = f"{name}{n}"
        n += 1
    taken.add(candidate)
    return candidate


def _label(part: str, load_time: bool) -> str:
    words = part.replace("_", " ").strip()
    label = words[:1].upper() + words[1:]
    return label + " (reload)" if load_time else label


def specs_from_schema(entries: Iterable[dict[str, Any]], reserved: Iterable[str] = ()) -> list[ParamSpec]:
    """One ``ParamSpec`` per schema entry that belongs on the panel.

    Stage parameters (``/bridge/<stage>/<param>``) go on a page named after the stage;
    daemon-wide controls (``/bridge/<name>``) on the ``Controls`` page. ``/bridge/ping``
    is left out: the extension's watchdog sends it, not a person. ``reserved`` names
    (the fixed Bridge/Status/MIDI parameters) are never reused.
    """
    taken = set(reserved)
    specs = []
    for e in entries:
        address = str(e["address"])
        if address == PING or not address.startswith(PREFIX + "/"):
            continue
        parts = address[len(PREFIX) + 1:].split("/")
        tag = e.get("type", "")
        low, high, choices = e.get("min"), e.get("max"), e.get("choices")
        if tag == "":
            kind = "pulse"
        elif tag == "T" or (tag == "i" and low == 0 and high == 1):
            kind = "toggle"
        elif tag == "i":
            kind = "int"
        elif tag == "f":
            kind = "float"
        elif choices or address == PRESET:
            kind = "menu"
        else:
            kind = "str"
        page = CONTROLS_PAGE if len(parts) == 1 else td_name(parts[0])
        if page in FIXED_PAGES:
            page += "stage"
        spec = ParamSpec(
            name=short_name(parts[0] if len(parts) > 1 else "", parts[-1], taken),
            address=address,
            osc_type=tag,
            kind=kind,
            page=page,
            label=_label(parts[-1], bool(e.get("load_time"))),
            min=low,
            max=high,
            default=e.get("default"),
            choices=[str(c) for c in choices] if choices else None,
            load_time=bool(e.get("load_time")),
            description=str(e.get("description") or ""),
        )
        specs.append(spec)
    return specs


def slider_range(spec: ParamSpec) -> tuple[float, float]:
    """The slider's displayed range (``normMin``, ``normMax``).

    The schema's min and max where it has them; for an open end, a span around the
    default (0..1 when there is no default), so the slider is usable.
    """
    default = spec.default if isinstance(spec.default, (int, float)) and not isinstance(spec.default, bool) else 0
    low = spec.min if spec.min is not None else min(0, default)
    high = spec.max if spec.max is not None else max(1, default * 2 if default > 0 else low + 1)
    return low, high


def osc_args(spec: ParamSpec, value: Any) -> list[Any]:
    """The OSC arguments for ``value`` as the daemon's schema types them.

    ``f`` -> ``[float]`` clamped to the schema range, ``i`` -> ``[int]`` (rounded,
    clamped), ``T`` -> ``[bool]`` (TouchDesigner's ``sendOSC`` sends a Python bool as the
    T/F type tag), ``s`` -> ``[str]``, a pulse -> ``[]``.
    """
    tag = spec.osc_type
    if tag == "":
        return []
    if tag == "T":
        return [bool(value)]
    if tag == "s":
        return [str(value)]
    number = float(value)
    if math.isnan(number):
        number = float(spec.default or 0)
    if spec.min is not None:
        number = max(number, float(spec.min))
    if spec.max is not None:
        number = min(number, float(spec.max))
    if tag == "i":
        return [int(round(number))]
    return [number]


def format_value(value: Any) -> str:
    """How an acknowledged value reads on the panel: ``0.65``, ``on``, ``premultiplied``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


# --------------------------------------------------------------------------- panel


def _append(page: Any, spec: ParamSpec) -> Any:
    """Create ``spec`` on ``page`` and return its ``Par``."""
    makers = {
        "float": "appendFloat",
        "int": "appendInt",
        "toggle": "appendToggle",
        "menu": "appendMenu",
        "str": "appendStr",
        "pulse": "appendPulse",
    }
    group = getattr(page, makers[spec.kind])(spec.name, label=spec.label)
    return group[0]


def configure_par(par: Any, spec: ParamSpec, menu: list[str] | None = None) -> None:
    """Range, default, menu items and help text of ``par`` from ``spec``.

    ``menu`` overrides the schema's choices (the preset list comes from the presets
    folder, not the schema).
    """
    if spec.kind in ("float", "int"):
        low, high = slider_range(spec)
        par.normMin, par.normMax = low, high
        if spec.min is not None:
            par.min, par.clampMin = spec.min, True
        if spec.max is not None:
            par.max, par.clampMax = spec.max, True
    if spec.kind == "menu":
        items = list(menu if menu is not None else (spec.choices or []))
        par.menuNames = items
        par.menuLabels = items
    if spec.kind != "pulse" and spec.default is not None:
        default = spec.default
        if spec.kind == "toggle":
            default = bool(default)
        elif spec.kind == "menu" and menu is not None:  # the preset menu: td-over when there is one
            default = DEFAULT_PRESET if DEFAULT_PRESET in menu else (default if default in menu else (menu[0] if menu else ""))
        par.default = default
        par.val = default
    set_help(par, spec.description)


def set_help(par: Any, text: str) -> bool:
    """Set a custom parameter's help text (Alt + rollover); False when refused.

    Par_Class marks ``help`` "(Read Only)" yet describes it as "Get or set a custom
    parameter's help text", so a refusal is skipped, never fatal.
    """
    if not text:
        return False
    try:
        par.help = text
    except Exception:
        return False
    return True


def create_parameters(comp: Any, specs: list[ParamSpec], presets: list[str]) -> dict[str, Any]:
    """Add every spec to ``comp``'s custom pages (what the daemon acknowledged goes to the
    ``acks`` table, not to a read-only twin of each parameter).

    Pages are created in schema order with ``comp.appendCustomPage(name)``; the preset
    menu lists ``presets``. Returns ``{parameter name: Par}``.
    """
    pages: dict[str, Any] = {p.name: p for p in getattr(comp, "customPages", [])}
    made: dict[str, Any] = {}
    for spec in specs:
        page = pages.get(spec.page)
        if page is None:
            page = pages[spec.page] = comp.appendCustomPage(spec.page)
        par = _append(page, spec)
        configure_par(par, spec, presets if spec.address == PRESET else None)
        made[spec.name] = par
    return made


def midi_targets(specs: Iterable[ParamSpec]) -> tuple[list[str], list[str]]:
    """Menu names and labels of the parameters a MIDI control can drive (MIDI learn target)."""
    targets = [s for s in specs if (s.numeric or s.kind == "pulse") and s.address != PRESET]
    return [s.name for s in targets], [f"{s.page}: {s.label}" for s in targets]


def remove_schema_pages(comp: Any, specs_pages: Iterable[str]) -> None:
    """Destroy the custom pages the schema made (before rebuilding them)."""
    wanted = set(specs_pages)
    for page in list(getattr(comp, "customPages", [])):
        if page.name in wanted:
            page.destroy()


# --------------------------------------------------------------------------- presets


def list_presets(folder: str) -> list[str]:
    """Preset names in ``folder`` (``*.yaml`` stems the daemon accepts), sorted."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    stems = [n[:-5] for n in names if n.endswith(".yaml")]
    return sorted(s for s in stems if PRESET_NAME_RE.match(s))


# --------------------------------------------------------------------------- MIDI


@dataclass
class MidiRow:
    """One row of the MIDI map: CHOP channel ``control`` drives ``address``.

    ``min``/``max`` is the parameter range the control sweeps (None: the schema's);
    ``inmax`` the control's full-scale input value (1 for normalised channels such as
    the MIDI In Map CHOP's sliders, 127 for raw 7-bit controller values).
    """

    control: str
    address: str
    min: float | None = None
    max: float | None = None
    inmax: float = 1.0
    note: str = ""


MIDI_COLUMNS = ["control", "address", "min", "max", "inmax", "note"]


def _num(text: str) -> float | None:
    text = (text or "").strip()
    if not text:
        return None
    return float(text)


def parse_midi_map(text: str) -> tuple[list[MidiRow], list[str]]:
    """Rows of a tab-separated MIDI map (header ``control address min max inmax note``).

    Returns ``(rows, problems)``: a bad row is reported as a one-line problem and
    skipped, so one typo never disables the whole map.
    """
    rows: list[MidiRow] = []
    problems: list[str] = []
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        return rows, problems
    header = [h.strip().lower() for h in lines[0].split("\t")]
    if "control" not in header or "address" not in header:
        return rows, ["MIDI map: first row must be the header 'control<TAB>address<TAB>min<TAB>max<TAB>inmax<TAB>note'"]
    for n, line in enumerate(lines[1:], start=2):
        cells = dict(zip(header, (c.strip() for c in line.split("\t"))))
        try:
            inmax = _num(cells.get("inmax", "")) or 1.0
            if inmax <= 0:
                raise ValueError("inmax must be > 0")
            row = MidiRow(
                control=cells["control"],
                address=cells["address"],
                min=_num(cells.get("min", "")),
                max=_num(cells.get("max", "")),
                inmax=inmax,
                note=cells.get("note", ""),
            )
            if not row.control or not row.address.startswith(PREFIX + "/"):
                raise ValueError("needs a control channel and a /bridge/... address")
        except (KeyError, ValueError) as exc:
            problems.append(f"MIDI map row {n}: {exc}")
            continue
        rows.append(row)
    return rows, problems


def format_midi_map(rows: Iterable[MidiRow]) -> str:
    """The tab-separated text of ``rows`` (with header), as ``parse_midi_map`` reads it."""

    def cell(v: Any) -> str:
        if v is None:
            return ""
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v)

    out = ["\t".join(MIDI_COLUMNS)]
    for r in rows:
        out.append("\t".join(cell(v) for v in (r.control, r.address, r.min, r.max, r.inmax, r.note)))
    return "\n".join(out) + "\n"


def channel_value(spec: ParamSpec, value: Any) -> float:
    """A parameter value as the CHOP channel that exports it (CHOP_Export: a toggle is on
    above 0, a menu picks item ``int(value)``)."""
    if spec.kind == "toggle":
        return 1.0 if value else 0.0
    if spec.kind == "menu":
        items = spec.choices or []
        return float(items.index(value)) if value in items else 0.0
    return float(value)


def midi_value(row: MidiRow, spec: ParamSpec, raw: float) -> Any:
    """The parameter value for controller value ``raw`` under ``row``.

    ``raw / inmax`` is clamped to 0..1 and mapped linearly onto ``row.min..row.max``
    (the schema's range when the row leaves them empty). Toggles switch at half way,
    ints round, menus pick the item at that fraction of the list.
    """
    frac = min(1.0, max(0.0, float(raw) / row.inmax))
    if spec.kind == "toggle":
        return frac >= 0.5
    if spec.kind == "menu":
        items = spec.choices or []
        return items[int(round(frac * (len(items) - 1)))] if items else None
    low, high = slider_range(spec)
    low = row.min if row.min is not None else low
    high = row.max if row.max is not None else high
    value = low + frac * (high - low)
    if spec.kind == "int":
        return int(round(value))
    return value


# --------------------------------------------------------------------------- daemon


@dataclass
class DaemonSettings:
    """What the control COMP's Bridge page says about starting the daemon."""

    command: str = "avatar-bridge"
    transport: str = "spout"
    sender: str = "TDOut"
    receiver: str = "AvatarBridge"
    preset: str = DEFAULT_PRESET
    device: str = "cuda"
    extra: str = ""
    osc_args: list[str] = field(default_factory=list)


def split_command(text: str, windows: bool | None = None) -> list[str]:
    """Split a command line the way the platform's shell would (quotes kept together)."""
    windows = (os.name == "nt") if windows is None else windows
    parts = shlex.split(text, posix=not windows)
    if windows:
        parts = [p[1:-1] if len(p) >= 2 and p[0] == p[-1] == '"' else p for p in parts]
    return parts


def daemon_command(s: DaemonSettings, windows: bool | None = None) -> list[str]:
    """The daemon's argv: ``<command> run --source URI --sink URI --preset NAME --device D ...``.

    TouchDesigner's Spout Out (sender ``s.sender``) is the daemon's source and the
    daemon's sender ``s.receiver`` is what TouchDesigner's Spout In receives; with
    ``transport='ndi'`` the same names are NDI source names.

    Raises:
        ValueError: empty command, unknown transport, or a preset name the daemon refuses.
    """
    base = split_command(s.command, windows)
    if not base:
        raise ValueError("Daemon command is empty: set it to avatar-bridge (or the full path to avatar-bridge.exe)")
    if s.transport not in ("spout", "ndi"):
        raise ValueError(f"unknown transport {s.transport!r}: use spout or ndi")
    if not PRESET_NAME_RE.match(s.preset or ""):
        raise ValueError(f"bad preset name {s.preset!r}: pick one from the Preset menu")
    argv = base + [
        "run",
        "--source", f"{s.transport}:{s.sender}",
        "--sink", f"{s.transport}:{s.receiver}",
        "--preset", s.preset,
    ]
    if s.device:
        argv += ["--device", s.device]
    return argv + list(s.osc_args) + split_command(s.extra, windows)


# --------------------------------------------------------------------------- paths, NDI, version


def relative_to(path: str, folder: str) -> str:
    """``path`` relative to ``folder`` (``project.folder``) when it lies inside it, else as given.

    TouchDesigner resolves a relative file or folder parameter against ``project.folder``,
    so a project that moves with its files keeps working.
    """
    if not path or not folder:
        return path
    try:
        rel = os.path.relpath(os.path.abspath(path), os.path.abspath(folder))
    except ValueError:  # another drive on Windows
        return path
    return path if rel == os.pardir or rel.startswith(os.pardir + os.sep) else rel.replace(os.sep, "/")


def resolve(path: str, folder: str) -> str:
    """A parameter's path as Python must open it: relative ones are under ``folder`` (``project.folder``)."""
    if not path or os.path.isabs(path) or not folder:
        return path
    return os.path.normpath(os.path.join(folder, path))


def ndi_source_name(source: str, receiver: str, host: str, hostname: str) -> str:
    """The NDI In TOP's Source Name: ``MACHINENAME (SourceName)``, as the NDI In TOP lists
    sources (NDI_Out_TOP page, Failover Source Name). The machine part of a local source
    is a guess: the host name in capitals.

    ``source`` (NDI source on the Bridge page) wins; else a daemon on this machine
    (``host`` local) is ``<HOSTNAME> (<receiver>)``; else '' (the machine name is unknown:
    pick the source in the NDI In TOP's menu).
    """
    if source.strip():
        return source.strip()
    if host in ("127.0.0.1", "localhost", "::1", "") and hostname and receiver:
        return f"{hostname.split('.')[0].upper()} ({receiver})"
    return ""


def read_version(repo: str) -> str:
    """``version`` from ``<repo>/pyproject.toml`` ('unknown' when it cannot be read)."""
    try:
        with open(os.path.join(repo, "pyproject.toml"), encoding="utf-8") as f:
            match = re.search(r'^version\s*=\s*"([^"]+)"', f.read(), re.M)
    except OSError:
        return "unknown"
    return match.group(1) if match else "unknown"
