"""A fake of TouchDesigner's ``td`` module for tests on Linux (TouchDesigner is absent).

It follows the real Python API's names (docs.derivative.ca: OP_Class, COMP_Class,
Par_Class, Page_Class, Connector_Class, oscoutDAT_Class, Extensions) and records what a
build does: operators created (type token, name, path), parameter values and
expressions, connections, custom pages and parameters, OSC messages sent, files saved.

Behaviour it emulates because the project relies on it:

* ``comp.create(<type>, name)``; operator types are module attributes (``td.baseCOMP``).
* Built-in parameters are only those listed in ``KNOWN_PARS`` (from each operator's User
  Guide page); reading an unknown one raises ``AttributeError`` like TouchDesigner, so a
  test can remove a name and see the build report it.
* Custom parameter names must match ``[A-Z][a-z0-9]*`` (TouchDesigner refuses others);
  ``clampMin``/``clampMax`` clamp assigned values; ``menuIndex`` follows ``menuNames``.
* A DAT's ``module`` is its text run as Python with TouchDesigner's globals (``me``,
  ``op``, ``parent``, operator types) injected.
* ``reinitextensions.pulse()`` evaluates ``ext0object`` and exposes the object as
  ``comp.ext.<ClassName>`` (and its capitalised members on the COMP when ``ext0promote``).
* A Parameter Execute DAT's ``onValueChange``/``onPulse`` run when a watched parameter
  changes or pulses; ``receive_osc``, ``chop_change`` and ``frame`` drive the OSC In DAT,
  CHOP Execute DAT and Execute DAT callbacks.
"""

from __future__ import annotations

import fnmatch
import re
import types
from typing import Any

# --------------------------------------------------------------------------- known parameters
TOP_COMMON = {"outputresolution", "resolutionw", "resolutionh", "outputaspect", "format", "inputfiltertype", "fillmode"}
DAT_COMMON = {"language", "extension", "customext", "wordwrap"}
DAT_FILE = {"file", "syncfile", "loadonstartpulse"}
COMP_COMMON = {"ext0object", "ext0name", "ext0promote", "reinitextensions", "initextonstart"}

KNOWN_PARS: dict[str, set[str]] = {
    "baseCOMP": COMP_COMMON,
    "windowCOMP": COMP_COMMON | {"winop", "winw", "winh", "winopen", "winclose", "borders", "monitor"},
    "videodeviceinTOP": TOP_COMMON | {"active", "library", "device"},
    "fitTOP": TOP_COMMON | {"fit"},
    "nullTOP": TOP_COMMON,
    "syphonspoutoutTOP": TOP_COMMON | {"active", "sendername"},
    "syphonspoutinTOP": TOP_COMMON | {"active", "sendername"},
    "ndioutTOP": TOP_COMMON | {"active", "name", "failovername", "fps", "includealpha"},
    "ndiinTOP": TOP_COMMON | {"active", "name", "extraips", "bandwidth"},
    "switchTOP": TOP_COMMON | {"index", "blend"},
    "moviefileinTOP": TOP_COMMON | {"file", "play", "speed"},
    "constantTOP": TOP_COMMON | {"colorr", "colorg", "colorb", "alpha"},
    "inTOP": TOP_COMMON,
    "outTOP": TOP_COMMON,
    "overTOP": TOP_COMMON | {"size", "prefit"},
    "textTOP": TOP_COMMON | {"text"},
    "oscoutDAT": DAT_COMMON | {"active", "protocol", "address", "port"},
    "oscinDAT": DAT_COMMON | {"active", "protocol", "port", "callbacks"},
    "parameterexecuteDAT": DAT_COMMON | DAT_FILE | {"active", "op", "pars", "custom", "builtin", "valuechange", "onpulse"},
    "executeDAT": DAT_COMMON | DAT_FILE | {"active", "start", "create", "exit", "framestart", "frameend"},
    "chopexecuteDAT": DAT_COMMON | DAT_FILE | {"active", "chop", "channel", "offtoon", "ontooff", "valuechange"},
    "textDAT": DAT_COMMON | DAT_FILE,
    "tableDAT": DAT_COMMON | DAT_FILE,
    "midiinmapCHOP": {"device", "id", "sliders", "buttons", "bvelocity"},
    "midiinCHOP": {"active", "device", "id"},
    "mergeCHOP": set(),
}
#: How many inputs each type takes (generators 0; default 1).
MAX_INPUTS = {
    "videodeviceinTOP": 0, "syphonspoutinTOP": 0, "ndiinTOP": 0, "moviefileinTOP": 0, "constantTOP": 0,
    "inTOP": 0, "textTOP": 1, "midiinmapCHOP": 0, "midiinCHOP": 0, "baseCOMP": 1, "windowCOMP": 0,
    "switchTOP": 9999, "mergeCHOP": 9999, "overTOP": 2, "oscoutDAT": 0, "oscinDAT": 0,
}
CUSTOM_NAME = re.compile(r"^[A-Z][a-z0-9]*$")


class OPType(str):
    """An operator type token, e.g. ``td.syphonspoutoutTOP``."""


for _token in KNOWN_PARS:
    globals()[_token] = OPType(_token)


# --------------------------------------------------------------------------- parameters
class Par:
    """One parameter (Par_Class): value, expression, range, menu and flags."""

    def __init__(self, owner: "OP", name: str, style: str = "Str", custom: bool = False, page: "Page | None" = None):
        self.owner, self.name, self.style, self.isCustom, self.page = owner, name, style, custom, page
        self._val: Any = {"Toggle": False, "Float": 0.0, "Int": 0, "Pulse": None}.get(style, "")
        if not custom:
            self._val = True if name == "active" else None
        self.expr: str | None = None
        self.min = 0
        self.max = 1
        self.normMin = 0
        self.normMax = 1
        self.clampMin = False
        self.clampMax = False
        self.default: Any = None
        self.menuNames: list[str] = []
        self.menuLabels: list[str] = []
        self.readOnly = False
        self.label = name
        self.help = ""
        self.pulses = 0

    def _coerce(self, value: Any) -> Any:
        if self.style == "Float":
            value = float(value)
        elif self.style == "Int":
            value = int(round(float(value)))
        elif self.style == "Toggle":
            value = bool(value)
        elif self.style in ("Str", "Menu", "Folder", "File"):
            value = "" if value is None else str(value)
        if self.style in ("Float", "Int"):
            if self.clampMin:
                value = max(value, self.min)
            if self.clampMax:
                value = min(value, self.max)
        return value

    @property
    def val(self) -> Any:
        return self._val

    @val.setter
    def val(self, value: Any) -> None:
        prev, self._val = self._val, self._coerce(value) if self.isCustom else value
        self.expr = None
        if prev != self._val:
            self.owner.td._par_changed(self, prev)

    def eval(self) -> Any:
        return self._val

    @property
    def menuIndex(self) -> int:
        return self.menuNames.index(self._val) if self._val in self.menuNames else 0

    def pulse(self, *args: Any, **kwargs: Any) -> None:
        self.pulses += 1
        if self.name == "reinitextensions":
            self.owner._init_extensions()
        self.owner.td._par_pulsed(self)

    def __repr__(self) -> str:
        return f"<Par {self.owner.path}.par.{self.name}={self._val!r}>"


class ParCollection:
    """``op.par``: attribute access to an operator's parameters; unknown names raise."""

    def __init__(self, owner: "OP", names: set[str]):
        object.__setattr__(self, "_owner", owner)
        object.__setattr__(self, "_pars", {n: Par(owner, n) for n in sorted(names)})

    def __getattr__(self, name: str) -> Par:
        try:
            return self._pars[name]
        except KeyError:
            raise AttributeError(f"td.tdAttributeError: 'td.ParCollection' object has no attribute '{name}'") from None

    def __setattr__(self, name: str, value: Any) -> None:
        getattr(self, name).val = value

    def _add(self, par: Par) -> None:
        self._pars[par.name] = par

    def _remove(self, name: str) -> None:
        self._pars.pop(name, None)


class ParGroup(list):
    """What ``Page.append*`` returns: the parameters made on one line."""


class Page:
    """A custom parameter page (Page_Class)."""

    STYLES = {"appendFloat": "Float", "appendInt": "Int", "appendToggle": "Toggle", "appendMenu": "Menu",
              "appendStr": "Str", "appendPulse": "Pulse", "appendFolder": "Folder", "appendFile": "File"}

    def __init__(self, owner: "OP", name: str):
        self.owner, self.name, self.pars = owner, name, []
        self.isCustom = True

    def _make(self, name: str, style: str, label: str | None) -> Par:
        if not CUSTOM_NAME.match(name):
            raise ValueError(f"Invalid parameter name: {name!r} (must be capitalised, then lower-case letters or digits)")
        if name in self.owner.par._pars:
            raise ValueError(f"parameter {name} already exists on {self.owner.path}")
        par = Par(self.owner, name, style=style, custom=True, page=self)
        par.label = label or name
        self.owner.par._add(par)
        self.pars.append(par)
        return par

    def __getattr__(self, method: str):
        if method in Page.STYLES:
            return lambda name, label=None, size=1, order=None, replace=True: ParGroup([self._make(name, Page.STYLES[method], label)])
        raise AttributeError(method)

    def appendRGB(self, name: str, label: str | None = None, order=None, replace=True) -> ParGroup:
        if not CUSTOM_NAME.match(name):
            raise ValueError(f"Invalid parameter name: {name!r}")
        return ParGroup([self._make(name + c, "Float", label) for c in "rgb"])

    def destroy(self) -> None:
        for par in self.pars:
            self.owner.par._remove(par.name)
        self.owner.customPages.remove(self)


# --------------------------------------------------------------------------- connectors and ops
class Connector:
    """An input or output connector (Connector_Class)."""

    def __init__(self, owner: "OP", index: int, is_input: bool):
        self.owner, self.index, self.isInput = owner, index, is_input

    @property
    def connections(self) -> list["Connector"]:
        if self.isInput:
            src = self.owner._inputs.get(self.index)
            return [src.outputConnectors[0]] if src is not None else []
        return [Connector(d, i, True) for (s, d, i) in self.owner.td.edges if s is self.owner]

    def connect(self, target: "Connector | OP") -> None:
        if self.isInput:
            raise ValueError("connect from an output connector")
        if isinstance(target, OP):
            free = [c for c in target.inputConnectors if c.index not in target._inputs]
            if not free:
                raise ValueError(f"{target.path} has no free input")
            target = free[0]
        dst = target.owner
        if target.index >= dst.max_inputs:
            raise IndexError(f"{dst.path} has {dst.max_inputs} input(s)")
        self.owner.td.edges = [e for e in self.owner.td.edges if not (e[1] is dst and e[2] == target.index)]
        self.owner.td.edges.append((self.owner, dst, target.index))
        dst._inputs[target.index] = self.owner


class OP:
    """An operator (OP_Class / COMP_Class / DAT_Class in one)."""

    def __init__(self, td: "FakeTD", parent: "OP | None", token: str, name: str):
        if token not in KNOWN_PARS and token != "root":
            raise ValueError(f"unknown operator type {token}")
        self.td, self._parent, self.OPType, self.name = td, parent, token, name
        self.path = "/" if parent is None else (parent.path.rstrip("/") + "/" + name)
        self.par = ParCollection(self, KNOWN_PARS.get(token, COMP_COMMON))
        self.max_inputs = MAX_INPUTS.get(token, 1)
        self._inputs: dict[int, OP] = {}
        self.children: dict[str, OP] = {}
        self.customPages: list[Page] = []
        self.ext = types.SimpleNamespace()
        self._promoted: Any = None
        self.text = ""
        self.nodeX = self.nodeY = 0
        self.sent: list[tuple[str, list]] = []
        self.saved: list[str] = []
        self._module_cache: tuple[str, types.ModuleType] | None = None

    # structure
    @property
    def family(self) -> str:
        return re.sub(r"^[a-z0-9]+", "", self.OPType) if self.OPType != "root" else "COMP"

    def parent(self, n: int = 1) -> "OP":
        node = self
        for _ in range(n):
            node = node._parent
        return node

    def create(self, optype: str, name: str) -> "OP":
        if self.family != "COMP":
            raise TypeError(f"{self.path} is not a COMP")
        if name in self.children:
            raise ValueError(f"{self.path}/{name} exists")
        child = OP(self.td, self, str(optype), name)
        self.children[name] = child
        self.td.created.append(child)
        return child

    def destroy(self) -> None:
        for child in list(self.children.values()):
            child.destroy()
        self.td.edges = [e for e in self.td.edges if e[0] is not self and e[1] is not self]
        if self._parent is not None:
            self._parent.children.pop(self.name, None)
        if self in self.td.created:
            self.td.created.remove(self)

    def op(self, path: str) -> "OP | None":
        if path.startswith("/"):
            node, parts = self.td.root, path.strip("/").split("/")
        else:
            node, parts = self, path.split("/")
        for part in parts:
            if part in ("", "."):
                continue
            node = node._parent if part == ".." else node.children.get(part)
            if node is None:
                return None
        return node

    @property
    def inputConnectors(self) -> list[Connector]:
        n = min(self.max_inputs, (max(self._inputs) + 2) if self._inputs else 1)
        return [Connector(self, i, True) for i in range(n)]

    @property
    def outputConnectors(self) -> list[Connector]:
        return [Connector(self, 0, False)]

    @property
    def inputs(self) -> list["OP"]:
        return [self._inputs[i] for i in sorted(self._inputs)]

    # custom parameters
    def appendCustomPage(self, name: str) -> Page:
        page = Page(self, name)
        self.customPages.append(page)
        return page

    @property
    def customPars(self) -> list[Par]:
        return [p for page in self.customPages for p in page.pars]

    def save(self, path: str) -> str:
        self.saved.append(path)
        return path

    # OSC Out DAT
    def sendOSC(self, address: str, values: list, asBundle: bool = False, useNonStandardTypes: bool = True,
                use64BitPrecision: bool = False) -> int:
        if self.OPType != "oscoutDAT":
            raise AttributeError("sendOSC")
        if not address.startswith("/"):
            raise ValueError(f"bad OSC address {address!r}")
        for v in values:
            if not isinstance(v, (bool, int, float, str)):
                raise TypeError(f"cannot send {type(v).__name__} over OSC")
        self.sent.append((address, list(values)))
        return len(address)

    # DAT module and extensions
    @property
    def module(self) -> types.ModuleType:
        if self._module_cache is None or self._module_cache[0] != self.text:
            mod = types.ModuleType(self.name)
            g = mod.__dict__
            g.update(self.td.globals_for(self))
            exec(compile(self.text, f"<DAT {self.path}>", "exec"), g)
            self._module_cache = (self.text, mod)
        return self._module_cache[1]

    def _init_extensions(self) -> None:
        source = self.par.ext0object.eval() if "ext0object" in self.par._pars else None
        if not source:
            return
        obj = eval(source, {"op": self.op, "me": self, "parent": self.parent})
        setattr(self.ext, type(obj).__name__, obj)
        self._promoted = obj if self.par.ext0promote.eval() else None

    def __getattr__(self, name: str) -> Any:
        promoted = self.__dict__.get("_promoted")
        if promoted is not None and name[:1].isupper() and hasattr(promoted, name):
            return getattr(promoted, name)
        raise AttributeError(name)

    def __repr__(self) -> str:
        return f"<{self.OPType} {self.path}>"


class Channel:
    """A CHOP channel as CHOP Execute callbacks receive it (Channel_Class)."""

    def __init__(self, owner: OP, name: str):
        self.owner, self.name, self.index = owner, name, 0


class Project:
    """``td.project`` (Project_Class): records saves."""

    def __init__(self) -> None:
        self.saved: list[str] = []
        self.folder = ""

    def save(self, path: str) -> bool:
        self.saved.append(path)
        return True


class FakeTD(types.ModuleType):
    """The ``td`` module: ``op``, ``project``, operator types, plus test drivers."""

    def __init__(self) -> None:
        super().__init__("td")
        for token in KNOWN_PARS:
            setattr(self, token, OPType(token))
        self.created: list[OP] = []
        self.edges: list[tuple[OP, OP, int]] = []
        self.project = Project()
        self.root = OP(self, None, "root", "")
        self.root.children["project1"] = OP(self, self.root, "baseCOMP", "project1")

    def op(self, path: str) -> OP | None:
        return self.root.op(path)

    def globals_for(self, dat: OP) -> dict[str, Any]:
        """What TouchDesigner puts in a DAT's namespace: me, op, parent, project, types."""
        g: dict[str, Any] = {t: OPType(t) for t in KNOWN_PARS}
        g.update(me=dat, op=dat.parent().op, parent=dat.parent, project=self.project, td=self)
        return g

    # ---- parameter execute emulation
    def _watchers(self, par: Par, flag: str) -> list[OP]:
        found = []
        for dat in self.created:
            if dat.OPType != "parameterexecuteDAT" or not dat.par.active.eval() or not dat.par._pars[flag].eval():
                continue
            target = dat.op(dat.par.op.eval() or "..")
            if target is not par.owner:
                continue
            if par.isCustom and not dat.par.custom.eval() or (not par.isCustom and not dat.par.builtin.eval()):
                continue
            patterns = (dat.par.pars.eval() or "").split()
            if any(fnmatch.fnmatchcase(par.name, p) for p in patterns):
                found.append(dat)
        return found

    def _par_changed(self, par: Par, prev: Any) -> None:
        for dat in self._watchers(par, "valuechange"):
            dat.module.onValueChange(par, prev)

    def _par_pulsed(self, par: Par) -> None:
        for dat in self._watchers(par, "onpulse"):
            dat.module.onPulse(par)

    # ---- drivers for the other callback DATs
    def receive_osc(self, oscin: OP, address: str, args: list) -> None:
        """An OSC message arrives at an OSC In DAT: call its Callbacks DAT's onReceiveOSC."""
        callbacks = oscin.parent().op(oscin.par.callbacks.eval())
        message = " ".join([address] + [str(a) for a in args])
        callbacks.module.onReceiveOSC(oscin, 0, message, message.encode(), 0.0, address, list(args), None)

    def chop_change(self, chop_exec: OP, channel: str, val: float, prev: float = 0.0) -> None:
        """A channel of the watched CHOP changed: call the CHOP Execute DAT's onValueChange."""
        chop = chop_exec.parent().op(chop_exec.par.chop.eval())
        chop_exec.module.onValueChange(Channel(chop, channel), 0, val, prev)

    def frame(self, execute: OP, n: int = 1) -> None:
        """One frame start: call the Execute DAT's onFrameStart."""
        execute.module.onFrameStart(n)


def fresh() -> FakeTD:
    """A new, empty fake TouchDesigner session (``/project1`` exists)."""
    return FakeTD()
