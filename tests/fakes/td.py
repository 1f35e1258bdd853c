"""A fake of TouchDesigner's ``td`` module for tests on Linux (TouchDesigner is absent).

Every operator's parameter list (``DOCS``) comes from its docs.derivative.ca page, read in
two public copies of the documentation: github andrewdoud/TD-Docs (May 2025,
``docs-trimmed-md/<Page>.md``) and cacheflowe/td-docs-mcp (Feb 2026,
``td_docs/<family>s/<Page>.md``), cross-checked against bottobot/touchdesigner-mcp-server
``wiki/data/maps/operators.json`` (scraped from docs.derivative.ca). ``names`` are on the
page in both copies (all of its pages: the operator's own page(s) and the Common /
Extensions / File pages it shows), ``newer`` only in the Feb 2026 copy, ``older`` only in
the May 2025 one. The page is named beside each operator. ``MENUS`` holds the menu items
of the menu parameters the build sets, from the same pages.

Behaviour it emulates because the project relies on it (page it is documented on):

* ``COMP.create(type, name)`` gives "the next numbered name if it's already in use"
  (COMP_Class); ``OP.name`` can be set (OP_Class).
* Reading a parameter a page does not list raises ``AttributeError``, as TouchDesigner
  does, so a test can remove a name and see the build report it; setting a menu parameter
  to an item its page does not list raises ``td.tdError``.
* Parameter modes (Par_Class, Parameter_Mode): ``par.val = v`` sets the constant value and
  puts the parameter in constant mode; ``par.expr`` puts it in expression mode and
  ``eval()`` runs the Python expression with ``me``, ``parent`` and ``op`` of the owner;
  ``par.bindExpr`` binds it; a CHOP with the Export flag and Export Method "Channel Name is
  Path:Parameter" (``exportmethod = autoname``, CHOP_Export) exports each channel named
  ``path:par`` to that parameter (export mode).
* Custom parameter names must match ``[A-Z][a-z0-9]*`` (Custom_Parameters).
* A Parameter Execute DAT's ``onValueChange(par, val, prev)`` runs once per frame for a
  parameter whose value changed in any way since the last frame ("It is called once each
  frame", Parameter_Execute_DAT), never inside the assignment; ``onPulse`` runs on the next
  frame too. ``tick()`` is one frame: Script CHOPs cook, exports apply, Execute DATs'
  ``onFrameStart`` run, then Parameter Execute callbacks.
* ``COMP.initializeExtensions()`` (COMP_Class) and the ``reinitextensions`` pulse evaluate
  ``ext0object`` and expose the object as ``comp.ext.<ClassName>`` (and its capitalised
  members on the COMP when ``ext0promote``; Extensions).
* A DAT's ``module`` is its text run as Python with TouchDesigner's globals (``me``,
  ``op``, ``parent``, operator types, ``ParMode``).
* CHOPs hold named channels: ``chop['name']`` (CHOP_Class), ``Channel.eval()/vals``
  (Channel_Class); a Script CHOP's ``onCook(scriptOp)`` uses ``clear()``,
  ``appendChan(name)`` and ``numSamples`` (scriptCHOP_Class); a Constant CHOP's channels
  are its ``const<i>name/const<i>value`` sequence blocks (``seq.const.numBlocks``,
  Sequence_Class); ``receive_osc``, ``chop_change`` and ``midi`` drive the OSC In DAT,
  CHOP Execute DAT and MIDI CHOPs.
* Component inputs and outputs are the In/Out operators inside, "positioned
  alphanumerically" (In_TOP, Out_TOP).
"""

from __future__ import annotations

import enum
import fnmatch
import re
import types
from typing import Any

DOC = "https://docs.derivative.ca/"


class Doc:
    """An operator's documentation page and the parameter names it lists."""

    def __init__(self, page: str, names: str, newer: str = "", older: str = ""):
        self.page, self.names, self.newer, self.older = page, names, newer, older

    @property
    def url(self) -> str:
        return DOC + self.page

    @property
    def all(self) -> set[str]:
        return set((self.names + " " + self.newer + " " + self.older).split())


# --------------------------------------------------------------------------- the documentation
DOCS: dict[str, Doc] = {
    "baseCOMP": Doc("Base_COMP", """
        clone enablecloning enablecloningpulse enableexternaltox enableexternaltoxpulse ext ext0name
        ext0object ext0promote externaltox iop iop0op iop0shortcut loadondemand opshortcut opviewer
        parentshortcut reinitextensions reloadbuiltin reloadcustom relpath savebackup subcompname""",
        newer="initextonstart",
    ),
    "windowCOMP": Doc("Window_COMP", """
        allowminimize alwaysontop borders bordersinsize clone closeescape cursorvisible dpiscaling
        drawwindow enablecloning enablecloningpulse enableexternaltox enableexternaltoxpulse ext
        ext0name ext0object ext0promote externaltox hwframelock ignoretaskbar includedialog interact iop
        iop0op iop0shortcut justifyh justifyoffsetto justifyv loadondemand opendialog opshortcut
        opviewer parentshortcut performance reinitextensions reloadbuiltin reloadcustom relpath
        savebackup setperform single size subcompname title update vsyncmode winclose winh winoffset
        winoffsetx winoffsety winop winopen winw""",
        newer="blocksleep constraincursor cursordisplay display initextonstart windowpixelformat",
        older="monitor openglstereo winrightop",
    ),
    "videodeviceinTOP": Doc("Video_Device_In_TOP", """
        active armenu aspect aspect1 aspect2 autoge autogebias autogelevel autowb bandwidthlimit
        camerabitdepth capture capturepulse cgamma chanmask channel custombandwidth deinterlace device
        driver exposure fillmode filtertype format gain gpudemosaic inputfiltertype inputpixelformat ip
        lgamma limitedfps limitfps maxexposure maxgain maxsyncoffset memorymode npasses options
        outputaspect outputresolution precedence preset quadlink resetstats resmenu resmult resolution
        resolutionh resolutionw signalformat specifyip syncgroupindex syncinputs synctimeout
        transfermode wbcoeffs wbcoeffsb wbcoeffsg wbcoeffsr""",
        newer="inputcolorspace inputreferencewhite parmcolorspace parmreferencewhite",
    ),
    "fitTOP": Doc("Fit_TOP", """
        armenu aspect aspect1 aspect2 bgcolor bgcolora bgcolorb bgcolorg bgcolorr chanmask fillmode
        filtertype fit format inputfiltertype legacyxform npasses outputaspect outputresolution p
        premultrgbbyalpha punit px py r resmenu resmult resolution resolutionh resolutionw s sx sy t
        tunit tx ty xord""",
        newer="justifyh justifyv parmcolorspace parmreferencewhite",
    ),
    "nullTOP": Doc("Null_TOP", """
        armenu aspect aspect1 aspect2 chanmask fillmode filtertype format inputfiltertype npasses
        outputaspect outputresolution resmenu resmult resolution resolutionh resolutionw""",
    ),
    "syphonspoutoutTOP": Doc("Syphon_Spout_Out_TOP", """
        active armenu aspect aspect1 aspect2 chanmask fillmode filtertype format inputfiltertype npasses
        outputaspect outputresolution resmenu resmult resolution resolutionh resolutionw sendername""",
    ),
    "syphonspoutinTOP": Doc("Syphon_Spout_In_TOP", """
        armenu aspect aspect1 aspect2 chanmask fillmode filtertype format inputfiltertype npasses
        outputaspect outputresolution resmenu resmult resolution resolutionh resolutionw sendername
        usespoutactivesender""",
    ),
    "ndioutTOP": Doc("NDI_Out_TOP", """
        active armenu aspect aspect1 aspect2 audiochop chanmask failovername fillmode filtertype format
        fps grouptable includealpha inputfiltertype lowperformancebehavior metadata name npasses
        outputaspect outputpixelformat outputresolution resmenu resmult resolution resolutionh
        resolutionw""",
        newer="outputcolorspace outputreferencewhite",
    ),
    "ndiinTOP": Doc("NDI_In_TOP", """
        active armenu aspect aspect1 aspect2 audiobuflen bandwidth chanmask extraips fillmode filtertype
        format grouptable hwdecode inputfiltertype inputpixelformat name npasses outputaspect
        outputresolution resmenu resmult resolution resolutionh resolutionw""",
        newer="inputcolorspace inputreferencewhite",
    ),
    "switchTOP": Doc("Switch_TOP", """
        armenu aspect aspect1 aspect2 blend chanmask fillmode filtertype format index inputfiltertype
        npasses outputaspect outputresolution resmenu resmult resolution resolutionh resolutionw""",
        newer="extend",
    ),
    "moviefileinTOP": Doc("Movie_File_In_TOP", """
        alwaysloadinitial armenu aspect aspect1 aspect2 asyncupload audioloop bottomhalfalpha chanmask
        cue cuebehavior cuepoint cuepointunit cuepulse deinterlace file fillmode filtertype format
        frametimeout frametimeoutstrat highperfread highperfreadfactor hwdecode imageindexing index
        indexunit inputfiltertype interp loadingerrorimage loopcrossfade loopcrossfadeunit maxdecodecpus
        multalpha npasses opentimeout outputaspect outputresolution overridesample play playmode
        precedence prereadframes reload reloadpulse resmenu resmult resolution resolutionh resolutionw
        samplerate speed stepsize tend tendunit textendleft textendright timecodeop trim tstart
        tstartunit updateimage uselatestontimeout""",
        newer="decodepixelformat inputcolorspace inputreferencewhite predownloadhttp premultrgbbyalpha timecodemode",
        older="inputsrgb",
    ),
    "constantTOP": Doc("Constant_TOP", """
        alpha armenu aspect aspect1 aspect2 chanmask color colorb colorg colorr compoverinput fillmode
        filtertype format inputfiltertype multrgbbyalpha npasses operand outputaspect outputresolution
        resmenu resmult resolution resolutionh resolutionw rgbaunit swaporder""",
        newer="parmcolorspace parmreferencewhite",
    ),
    "inTOP": Doc("In_TOP", """
        armenu aspect aspect1 aspect2 chanmask fillmode filtertype format inputfiltertype label npasses
        outputaspect outputresolution resmenu resmult resolution resolutionh resolutionw""",
    ),
    "outTOP": Doc("Out_TOP", """
        armenu aspect aspect1 aspect2 chanmask fillmode filtertype format inputfiltertype label npasses
        outputaspect outputresolution resmenu resmult resolution resolutionh resolutionw""",
    ),
    "overTOP": Doc("Over_TOP", """
        armenu aspect aspect1 aspect2 chanmask extend fillmode filtertype format inputfiltertype
        justifyh justifyv npasses outputaspect outputresolution p prefit punit px py r resmenu resmult
        resolution resolutionh resolutionw s size sx sy t tunit tx ty""",
        newer="legacyxform",
    ),
    "textTOP": Doc("Text_TOP", """
        alignx alignxmode aligny alignymode antialias appendvalue armenu aspect aspect1 aspect2 bgalpha
        bgcolor bgcolorb bgcolorg bgcolorr bold bordera borderaalpha borderab borderag borderar borderb
        borderbalpha borderbb borderbg borderbr borderspace borderspace1 borderspace2 bottomborder
        bottomborderi breaklang chanmask charset chop chopvaluereplace colindex compoverinput dat
        decimaldigits dispmethod field fillmode filtertype font fontalpha fontautosize fontcolor
        fontcolorb fontcolorg fontcolorr fontfile fontsizex fontsizexunit fontsizey fontsizeyunit format
        inputfiltertype italic keepfontratio leftborder leftborderi legacyparsing linespacing
        linespacingunit multrgbbyalpha npasses operand outputaspect outputresolution position position1
        position2 positionunit posttext readingdirection resmenu resmult resolution resolutionh
        resolutionw rightborder rightborderi rowindex smartquote specdat strokewidth swaporder text
        topborder topborderi totaldigits tracking tracking1 tracking2 valuetouse wordwrap""",
        newer="parmcolorspace parmreferencewhite",
    ),
    "oscoutDAT": Doc("OSC_Out_DAT", """
        active address addscope bundletimestamp bytes callbacks clamp clear customext executeloc
        extension fromop language localaddress maxlines port protocol shared splitbundle splitmessage
        typetag wordwrap""",
    ),
    "oscinDAT": Doc("OSC_In_DAT", """
        active address addscope bundletimestamp bytes callbacks clamp clear customext executeloc
        extension fromop language localaddress maxlines port protocol shared splitbundle splitmessage
        typetag wordwrap""",
    ),
    "parameterexecuteDAT": Doc("Parameter_Execute_DAT", """
        active builtin custom customext edit enablechange executeloc exportchange expressionchange
        extension file fromop language loadonstart loadonstartpulse modechange onpulse op pars syncfile
        valuechange valueschanged wordwrap write writepulse""",
    ),
    "executeDAT": Doc("Execute_DAT", """
        active create customext devicechange edit executeloc exit extension file frameend framestart
        fromop language loadonstart loadonstartpulse playstatechange start syncfile wordwrap write
        writepulse""",
    ),
    "chopexecuteDAT": Doc("CHOP_Execute_DAT", """
        active channel chop customext edit executeloc extension file freq fromop language loadonstart
        loadonstartpulse offtoon ontooff syncfile valuechange whileoff whileon wordwrap write writepulse""",
    ),
    "textDAT": Doc("Text_DAT", """
        customext edit extension file language loadonstart loadonstartpulse syncfile wordwrap write
        writepulse""",
    ),
    "tableDAT": Doc("Table_DAT", """
        cellexpr cols customext defaultreadencoding edit extension file fill fills fills0expr
        fills0names includenames language loadonstart removeblank rows syncfile wordwrap write""",
    ),
    "midiinmapCHOP": Doc("MIDI_In_Map_CHOP", """
        autoexportroot buttons bvelocity defval device exportmethod exporttable id left rate right scope
        sliders squeue srselect timeslice""",
    ),
    "midiinCHOP": Doc("MIDI_In_CHOP", """
        Units active aftername autoexportroot barmsg barname barperiod barstart channel controlind
        controlname controltype defval device end endunit entire exportmethod exporttable file format id
        left norm notemeth notename notenorm notescope onebased pitchname prefix preservepulses
        pressname progname pulsename rampname rate record recordtype resetchannels resetchannelspulse
        resetvalues right scope simplified songpos source srselect start startunit sysex sysex0msg
        sysex0name ticks timerperiod timerstart timeslice unwrap velname velocity""",
    ),
    "mergeCHOP": Doc("Merge_CHOP", """
        align autoexportroot duplicate exportmethod exporttable scope srselect timeslice""",
        newer="amb ambient commonrenamefrom commonrenameto",
    ),
    "scriptCHOP": Doc("Script_CHOP", """
        autoexportroot callbacks exportmethod exporttable scope setuppars srselect timeslice""",
        newer="modoutsidecook",
    ),
    "nullCHOP": Doc("Null_CHOP", """
        autoexportroot checknames checkrange checkvalues cooktype exportmethod exporttable scope
        srselect timeslice""",
        newer="amb ambient commonrenamefrom commonrenameto",
    ),
    "constantCHOP": Doc("Constant_CHOP", """
        autoexportroot chan1 const const0name const0value current defval end endunit exportmethod
        exporttable first left rate right scope single snap srselect start startunit timeslice""",
    ),
    "outCHOP": Doc("Out_CHOP", """
        autoexportroot exportmethod exporttable label scope srselect timeslice""",
        newer="amb ambient commonrenamefrom commonrenameto",
    ),
}
#: Menu items of the menu parameters the build sets (same pages; TOP/CHOP Common pages).
_TOP_RES = ["useinput", "eighth", "quarter", "half", "2x", "4x", "8x", "fit", "limit", "custom"]
_FIT = ["fill", "fithorz", "fitvert", "fitbest", "fitoutside", "nativeres"]
_EXPORT = ["datindex", "datname", "autoname"]
MENUS: dict[tuple[str, str], list[str]] = {
    ("*TOP", "outputresolution"): _TOP_RES,
    ("*TOP", "format"): ["useinput", "rgba8fixed", "srgba8fixed", "rgba16float", "rgba32float", "rgb10a2fixed",
                         "rgba16fixed", "rgba11float", "rgb16float", "rgb32float", "mono8fixed", "mono16fixed",
                         "mono16float", "mono32float", "rg8fixed", "rg16fixed", "rg16float", "rg32float", "a8fixed",
                         "a16fixed", "a16float", "a32float", "monoalpha8fixed", "monoalpha16fixed",
                         "monoalpha16float", "monoalpha32float"],
    ("*CHOP", "exportmethod"): _EXPORT,
    ("fitTOP", "fit"): _FIT,
    ("overTOP", "prefit"): _FIT,
    ("overTOP", "size"): ["input1", "input2"],
    ("windowCOMP", "size"): ["automatic", "fill", "custom", "exclusive"],  # exclusive: Feb 2026 copy only
    ("midiinCHOP", "norm"): ["off", "0to1", "-1to1", "onoff"],
    ("midiinCHOP", "controltype"): ["index"] + [f"n{i}" for i in range(24)],
    ("videodeviceinTOP", "driver"): ["directshow", "mediafoundation", "imagingsource", "datapath", "blackmagic",
                                     "alliedvisiongige", "ids", "pointgreyflycapture", "flirspinnaker", "avfoundation",
                                     "bluefish444", "aja", "ximea", "deltacast"],
}
KNOWN_PARS: dict[str, set[str]] = {token: doc.all for token, doc in DOCS.items()}
#: How many inputs each type takes (generators 0; default 1; COMPs: their In operators).
MAX_INPUTS = {
    "videodeviceinTOP": 0, "syphonspoutinTOP": 0, "ndiinTOP": 0, "moviefileinTOP": 0, "constantTOP": 0,
    "inTOP": 0, "textTOP": 1, "midiinmapCHOP": 0, "midiinCHOP": 0, "constantCHOP": 0, "windowCOMP": 0,
    "switchTOP": 9999, "mergeCHOP": 9999, "overTOP": 2, "oscoutDAT": 0, "oscinDAT": 0, "scriptCHOP": 9999,
}
CUSTOM_NAME = re.compile(r"^[A-Z][a-z0-9]*$")


class tdError(Exception):
    """What TouchDesigner raises for a refused value (``td.tdError``)."""


class ParMode(enum.Enum):
    """``ParMode`` (Par_Class: "one of ParMode.CONSTANT, EXPRESSION, EXPORT, BIND")."""

    CONSTANT = 0
    EXPRESSION = 1
    EXPORT = 2
    BIND = 3


class OPType(str):
    """An operator type token, e.g. ``td.syphonspoutoutTOP``."""


for _token in KNOWN_PARS:
    globals()[_token] = OPType(_token)


def _family(token: str) -> str:
    for fam in ("COMP", "TOP", "CHOP", "DAT", "SOP", "MAT"):
        if token.endswith(fam):
            return fam
    return "COMP"


def _menu_items(token: str, name: str) -> list[str] | None:
    return MENUS.get((token, name)) or MENUS.get(("*" + _family(token), name))


# --------------------------------------------------------------------------- parameters
class Par:
    """One parameter (Par_Class): value, mode, expression, bind, export, range, menu, flags."""

    def __init__(self, owner: "OP", name: str, style: str = "Str", custom: bool = False, page: "Page | None" = None):
        self.owner, self.name, self.style, self.isCustom, self.page = owner, name, style, custom, page
        self._val: Any = {"Toggle": False, "Float": 0.0, "Int": 0, "Pulse": None}.get(style, "")
        if not custom:
            self._val = True if name == "active" else None
        self._expr: str = ""
        self._bind: str = ""
        self._export: "tuple[OP, str] | None" = None
        self.mode = ParMode.CONSTANT
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
        self.enable = True
        self.label = name
        self.help = ""
        self.pulses = 0

    def _coerce(self, value: Any) -> Any:
        if not self.isCustom:
            items = _menu_items(self.owner.OPType, self.name)
            if items is not None and value not in items:
                raise tdError(f"{value!r} is not an item of {self.owner.OPType}.par.{self.name} ({' '.join(items)})")
            return value
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

    # ---- modes
    @property
    def val(self) -> Any:
        """The constant-mode value only (Par_Class)."""
        return self._val

    @val.setter
    def val(self, value: Any) -> None:
        self._val = self._coerce(value)
        self.mode = ParMode.CONSTANT

    @property
    def expr(self) -> str:
        return self._expr

    @expr.setter
    def expr(self, text: str) -> None:
        self._expr = text or ""
        self.mode = ParMode.EXPRESSION if text else ParMode.CONSTANT

    @property
    def bindExpr(self) -> str:
        return self._bind

    @bindExpr.setter
    def bindExpr(self, text: str) -> None:
        self._bind = text or ""
        self.mode = ParMode.BIND if text else ParMode.CONSTANT

    @property
    def exportOP(self) -> "OP | None":
        return self._export[0] if self._export and self.mode == ParMode.EXPORT else None

    def _context(self) -> dict[str, Any]:
        owner = self.owner
        net = owner.parent() if owner.parent() is not None else owner
        return {"me": owner, "parent": owner.parent, "op": net.op, "ParMode": ParMode, "project": owner.td.project}

    def eval(self) -> Any:
        if self.mode == ParMode.EXPRESSION:
            value = eval(self._expr, self._context())
            value = value.eval() if isinstance(value, Par) else value
            return self._coerce(value) if self.isCustom else value
        if self.mode == ParMode.BIND:
            master = eval(self._bind, self._context())
            return master.eval() if isinstance(master, Par) else master
        if self.mode == ParMode.EXPORT and self._export is not None:
            chop, chan = self._export
            return self._from_channel(chop.chans_dict().get(chan, 0.0))
        return self._val

    def _from_channel(self, value: float) -> Any:
        """CHOP_Export: toggles are on above 0, menus pick item int(value), the rest take the value."""
        if self.style == "Toggle":
            return value > 0
        if self.style == "Menu":
            items = self.menuNames
            return items[min(max(int(value), 0), len(items) - 1)] if items else ""
        return self._coerce(value) if self.isCustom else value

    @property
    def menuIndex(self) -> int:
        value = self.eval()
        return self.menuNames.index(value) if value in self.menuNames else 0

    def pulse(self, *args: Any, **kwargs: Any) -> None:
        self.pulses += 1
        if self.name == "reinitextensions":
            self.owner.initializeExtensions()
        self.owner.td._pulsed.append(self)

    def __repr__(self) -> str:
        return f"<Par {self.owner.path}.par.{self.name}={self._val!r} {self.mode.name}>"


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
              "appendStr": "Str", "appendPulse": "Pulse", "appendFolder": "Folder", "appendFile": "File",
              "appendHeader": "Header"}

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


class Channel:
    """A CHOP channel (Channel_Class): ``name``, ``index``, ``vals``, ``eval()``."""

    def __init__(self, owner: "OP", name: str, index: int = 0, value: float = 0.0):
        self.owner, self.name, self.index, self.vals = owner, name, index, [float(value)]

    def eval(self, index: int = 0) -> float:
        return self.vals[index] if self.vals else 0.0

    def __float__(self) -> float:
        return self.eval()

    def __getitem__(self, i: int) -> float:
        return self.vals[i]

    def __setitem__(self, i: int, value: float) -> None:
        self.vals[i] = float(value)


class _Seq:
    """``op.seq.<name>`` (Sequence_Class): ``numBlocks`` adds or removes ``<name><i><par>`` parameters."""

    def __init__(self, owner: "OP", name: str, members: list[str]):
        self.owner, self.name, self.members, self._n = owner, name, members, 1

    @property
    def numBlocks(self) -> int:
        return self._n

    @numBlocks.setter
    def numBlocks(self, n: int) -> None:
        pars = self.owner.par._pars
        for i in range(n):
            for m in self.members:
                key = f"{self.name}{i}{m}"
                if key not in pars:
                    pars[key] = Par(self.owner, key)
                    pars[key]._val = "" if m == "name" else 0.0
        for i in range(n, self._n):
            for m in self.members:
                pars.pop(f"{self.name}{i}{m}", None)
        self._n = n


class OP:
    """An operator (OP_Class / COMP_Class / DAT_Class / CHOP_Class in one)."""

    def __init__(self, td: "FakeTD", parent: "OP | None", token: str, name: str):
        if token not in KNOWN_PARS and token != "root":
            raise ValueError(f"unknown operator type {token}")
        self.td, self._parent, self.OPType, self._name = td, parent, token, name
        self.par = ParCollection(self, KNOWN_PARS.get(token, set()))
        if token == "constantCHOP":
            for key in ("const0name", "const0value"):
                self.par._pars[key]._val = "" if key.endswith("name") else 0.0
        self.seq = types.SimpleNamespace(const=_Seq(self, "const", ["name", "value"])) if token == "constantCHOP" else None
        self._inputs: dict[int, OP] = {}
        self.children: dict[str, OP] = {}
        self.customPages: list[Page] = []
        self.ext = types.SimpleNamespace()
        self._promoted: Any = None
        self.text = ""
        self.nodeX = self.nodeY = 0
        self.sent: list[tuple[str, list]] = []
        self.saved: list[str] = []
        self.cooks = 0
        self.export = False
        self._chans: dict[str, float] = {}
        self._module_cache: tuple[str, types.ModuleType] | None = None

    # structure
    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, new: str) -> None:
        if self._parent is not None:
            if new in self._parent.children and self._parent.children[new] is not self:
                raise tdError(f"{self._parent.path}/{new} exists")
            self._parent.children.pop(self._name, None)
            self._parent.children[new] = self
        self._name = new

    @property
    def path(self) -> str:
        if self._parent is None:
            return "/"
        return self._parent.path.rstrip("/") + "/" + self._name

    @property
    def family(self) -> str:
        return "COMP" if self.OPType == "root" else _family(self.OPType)

    @property
    def isCOMP(self) -> bool:
        return self.family == "COMP"

    def parent(self, n: int = 1) -> "OP":
        node = self
        for _ in range(n):
            node = node._parent
        return node

    def create(self, optype: str, name: str | None = None, initialize: bool = True) -> "OP":
        if self.family != "COMP":
            raise TypeError(f"{self.path} is not a COMP")
        name = name or str(optype).rstrip("COMPTOPCHOPDAT") + "1"
        if name in self.children:  # "the next numbered name if it's already in use" (COMP_Class.create)
            m = re.match(r"^(.*?)(\d*)$", name)
            base, n = m.group(1), int(m.group(2) or 0) + 1
            while f"{base}{n}" in self.children:
                n += 1
            name = f"{base}{n}"
        child = OP(self.td, self, str(optype), name)
        self.children[name] = child
        self.td.created.append(child)
        return child

    def destroy(self) -> None:
        for child in list(self.children.values()):
            child.destroy()
        self.td.edges = [e for e in self.td.edges if e[0] is not self and e[1] is not self]
        if self._parent is not None and self._parent.children.get(self._name) is self:
            self._parent.children.pop(self._name, None)
        if self in self.td.created:
            self.td.created.remove(self)
        self.td.destroyed.append(self)

    def op(self, path: str) -> "OP | None":
        if isinstance(path, OP):
            return path
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

    def findChildren(self, type: Any = None, name: str | None = None) -> list["OP"]:
        return [c for c in self.children.values()
                if (type is None or c.OPType == str(type)) and (name is None or fnmatch.fnmatchcase(c.name, name))]

    @property
    def max_inputs(self) -> int:
        if self.family == "COMP" and self.OPType != "windowCOMP":
            return len([c for c in self.children.values() if c.OPType.startswith("in") and c.OPType[2:] in ("TOP", "CHOP")])
        return MAX_INPUTS.get(self.OPType, 1)

    def _io(self, kind: str) -> list["OP"]:
        """In or Out operators inside a COMP, alphanumerically (In_TOP / Out_TOP)."""
        return sorted((c for c in self.children.values() if re.fullmatch(kind + r"(TOP|CHOP)", c.OPType)),
                      key=lambda c: c.name)

    @property
    def inputConnectors(self) -> list[Connector]:
        if self.family == "COMP":
            return [Connector(self, i, True) for i in range(self.max_inputs)]
        n = min(self.max_inputs, (max(self._inputs) + 2) if self._inputs else 1)
        return [Connector(self, i, True) for i in range(n)]

    @property
    def outputConnectors(self) -> list[Connector]:
        if self.family == "COMP" and self._io("out"):
            return [Connector(self, i, False) for i in range(len(self._io("out")))]
        return [Connector(self, 0, False)]

    @property
    def inputs(self) -> list["OP"]:
        return [self._inputs[i] for i in sorted(self._inputs)]

    def cook(self, force: bool = False, recurse: bool = False, includeUtility: bool = False) -> None:
        self.cooks += 1

    def openViewer(self, unique: bool = False, borders: bool = True) -> None:
        self.viewers = getattr(self, "viewers", 0) + 1

    # custom parameters
    def appendCustomPage(self, name: str) -> Page:
        page = Page(self, name)
        self.customPages.append(page)
        return page

    @property
    def customPars(self) -> list[Par]:
        return [p for page in self.customPages for p in page.pars]

    def save(self, path: str, createFolders: bool = False, password: str | None = None) -> str:
        self.saved.append(path)
        return path

    # OSC Out DAT
    def sendOSC(self, address: str, *values: Any, asBundle: bool = False, useNonStandardTypes: bool = True,
                use64BitPrecision: bool = False) -> int:
        if self.OPType != "oscoutDAT":
            raise AttributeError("sendOSC")
        if not address.startswith("/"):
            raise ValueError(f"bad OSC address {address!r}")
        if len(values) != 1 or not isinstance(values[0], (list, tuple)):
            raise TypeError("sendOSC(address, [values]) takes one list of values per address")
        for v in values[0]:
            if not isinstance(v, (bool, int, float, str)):
                raise TypeError(f"cannot send {type(v).__name__} over OSC")
        self.sent.append((address, list(values[0])))
        return len(address)

    # CHOPs
    def chans_dict(self) -> dict[str, float]:
        """This CHOP's channels now: its own, its inputs' (Null/Merge/Out/Script), or its constants."""
        if self.OPType == "constantCHOP":
            n = self.seq.const.numBlocks
            return {self.par._pars[f"const{i}name"].eval(): float(self.par._pars[f"const{i}value"].eval() or 0.0)
                    for i in range(n) if self.par._pars[f"const{i}name"].eval()}
        if self.OPType in ("nullCHOP", "outCHOP", "mergeCHOP"):
            merged: dict[str, float] = {}
            for src in self.inputs:
                merged.update(src.chans_dict())
            return merged
        return dict(self._chans)

    def chans(self, *patterns: str) -> list[Channel]:
        items = list(self.chans_dict().items())
        if patterns:
            items = [(n, v) for n, v in items if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
        return [Channel(self, n, i, v) for i, (n, v) in enumerate(items)]

    @property
    def numChans(self) -> int:
        return len(self.chans_dict())

    def __getitem__(self, key: "str | int") -> Channel | None:
        chans = self.chans()
        if isinstance(key, int):
            return chans[key] if key < len(chans) else None
        return next((c for c in chans if c.name == key), None)

    # Script CHOP (scriptCHOP_Class), used inside onCook only
    numSamples = 1

    def clear(self) -> None:
        self._chans.clear()
        self._script_chans: list[Channel] = []

    def appendChan(self, name: str) -> Channel:
        chan = Channel(self, name, len(self._chans))
        self._script_chans.append(chan)
        self._chans[name] = 0.0
        return chan

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

    def initializeExtensions(self, index: int | None = None) -> Any:
        """COMP_Class.initializeExtensions: compile ``ext0object``; returns the extension."""
        source = self.par.ext0object.eval() if "ext0object" in self.par._pars else None
        if not source:
            return None
        obj = eval(source, {"op": self.op, "me": self, "parent": self.parent})
        setattr(self.ext, type(obj).__name__, obj)
        self._promoted = obj if self.par.ext0promote.eval() else None
        return obj

    def __getattr__(self, name: str) -> Any:
        promoted = self.__dict__.get("_promoted")
        if promoted is not None and name[:1].isupper() and hasattr(promoted, name):
            return getattr(promoted, name)
        raise AttributeError(name)

    def __repr__(self) -> str:
        return f"<{self.OPType} {self.path}>"


class Project:
    """``td.project`` (Project_Class): ``folder`` and ``save``, recorded."""

    def __init__(self) -> None:
        self.saved: list[str] = []
        self.folder = ""

    def save(self, path: str | None = None, saveExternalToxs: bool = False) -> bool:
        self.saved.append(path)
        return True


class UI:
    """``td.ui`` (UI_Class): ``viewFile`` is recorded."""

    def __init__(self) -> None:
        self.viewed: list[str] = []

    def viewFile(self, url_or_path: str, showInFolder: bool = False) -> None:
        self.viewed.append(url_or_path)


class FakeTD(types.ModuleType):
    """The ``td`` module: ``op``, ``project``, ``ui``, ``ParMode``, operator types, plus test drivers."""

    def __init__(self) -> None:
        super().__init__("td")
        for token in KNOWN_PARS:
            setattr(self, token, OPType(token))
        self.ParMode = ParMode
        self.tdError = tdError
        self.created: list[OP] = []
        self.destroyed: list[OP] = []
        self.edges: list[tuple[OP, OP, int]] = []
        self.project = Project()
        self.ui = UI()
        self.frame = 0
        self._pulsed: list[Par] = []
        self._seen: dict[int, dict[int, Any]] = {}
        self.root = OP(self, None, "root", "")
        self.root.children["project1"] = OP(self, self.root, "baseCOMP", "project1")

    def op(self, path: str) -> OP | None:
        return self.root.op(path)

    def globals_for(self, dat: OP) -> dict[str, Any]:
        """What TouchDesigner puts in a DAT's namespace: me, op, parent, project, ui, ParMode, types."""
        g: dict[str, Any] = {t: OPType(t) for t in KNOWN_PARS}
        g.update(me=dat, op=dat.parent().op, parent=dat.parent, project=self.project, ui=self.ui, td=self,
                 ParMode=ParMode, tdError=tdError)
        return g

    # ---- one frame
    def tick(self, n: int = 1) -> None:
        """``n`` frames: Script CHOPs cook, CHOP exports apply, Execute DATs' onFrameStart, then the
        Parameter Execute DATs' onPulse / onValueChange for what changed since the last frame."""
        for _ in range(n):
            self.frame += 1
            for chop in [o for o in self.created if o.OPType == "scriptCHOP"]:
                self._cook_script(chop)
            self._apply_exports()
            for dat in [o for o in self.created if o.OPType == "executeDAT"]:
                if dat.par.active.eval() and dat.par.framestart.eval():
                    dat.module.onFrameStart(self.frame)
            pulsed, self._pulsed = self._pulsed, []
            for par in pulsed:
                for dat in self._watchers(par, "onpulse"):
                    dat.module.onPulse(par)
            self._value_changes()

    def _cook_script(self, chop: OP) -> None:
        callbacks = chop.parent().op(chop.par.callbacks.eval() or "")
        if callbacks is None:
            return
        chop.clear()
        callbacks.module.onCook(chop)
        chop._chans = {c.name: c.eval() for c in chop._script_chans}

    def _apply_exports(self) -> None:
        """CHOP_Export, "Channel Name is Path:Parameter": each channel ``path:par`` (relative to
        Export Root, default ``parent()``) exports to that parameter; a parameter whose channel went
        away goes back to its constant value."""
        targets: set[int] = set()
        for chop in [o for o in self.created if o.family == "CHOP" and o.export]:
            if "exportmethod" not in chop.par._pars or chop.par.exportmethod.eval() != "autoname":
                continue
            root = chop.par.autoexportroot.eval() if chop.par.autoexportroot.mode != ParMode.CONSTANT or \
                chop.par.autoexportroot.val else chop.parent()
            root = chop.op(root) if isinstance(root, str) else root
            for name in chop.chans_dict():
                path, _, parname = name.replace("/", ":").rpartition(":")
                target = root.op(path.replace(":", "/")) if path else None
                par = target.par._pars.get(parname) if target is not None else None
                if par is None:
                    continue
                par._export = (chop, name)
                par.mode = ParMode.EXPORT
                targets.add(id(par))
        for o in self.created + [self.root.children["project1"]]:
            for par in o.par._pars.values():
                if par.mode == ParMode.EXPORT and id(par) not in targets:
                    par.mode, par._export = ParMode.CONSTANT, None

    def _watchers(self, par: Par, flag: str) -> list[OP]:
        found = []
        for dat in self.created:
            if dat.OPType != "parameterexecuteDAT" or not dat.par.active.eval() or not dat.par._pars[flag].eval():
                continue
            if par in self._watched(dat, pulses=True):
                found.append(dat)
        return found

    def _watched(self, dat: OP, pulses: bool = False) -> list[Par]:
        target = dat.op(dat.par.op.eval() or "..")
        if target is None:
            return []
        patterns = (dat.par.pars.eval() or "").split()
        return [p for p in target.par._pars.values()
                if (dat.par.custom.eval() if p.isCustom else dat.par.builtin.eval()) and (p.style == "Pulse") == pulses
                and any(fnmatch.fnmatchcase(p.name, pat) for pat in patterns)]

    def _value_changes(self) -> None:
        for dat in [o for o in self.created if o.OPType == "parameterexecuteDAT"]:
            if not dat.par.active.eval():
                continue
            seen = self._seen.setdefault(id(dat), {})
            first = not seen
            for par in self._watched(dat):
                value = par.eval()
                if id(par) not in seen:
                    seen[id(par)] = value
                    if first:
                        continue
                    prev = None
                else:
                    prev = seen[id(par)]
                if value != prev and dat.par.valuechange.eval():
                    seen[id(par)] = value
                    dat.module.onValueChange(par, value, prev)
                seen[id(par)] = value

    # ---- drivers for the other callback DATs and the MIDI CHOPs
    def receive_osc(self, oscin: OP, address: str, args: list) -> None:
        """An OSC message arrives at an OSC In DAT: call its Callbacks DAT's onReceiveOSC."""
        callbacks = oscin.parent().op(oscin.par.callbacks.eval())
        message = " ".join([address] + [str(a) for a in args])
        callbacks.module.onReceiveOSC(oscin, 0, message, message.encode(), 0.0, address, list(args), None)

    def midi(self, chop: OP, channel: str, value: float) -> None:
        """A MIDI CHOP's channel takes ``value``; CHOP Execute DATs watching a CHOP downstream fire."""
        prev = chop._chans.get(channel, 0.0)
        chop._chans[channel] = float(value)
        for dat in [o for o in self.created if o.OPType == "chopexecuteDAT"]:
            watched = dat.parent().op(dat.par.chop.eval() or "")
            if watched is None or channel not in watched.chans_dict() or not dat.par.active.eval():
                continue
            if not fnmatch.fnmatchcase(channel, dat.par.channel.eval() or "*"):
                continue
            chan = Channel(watched, channel, 0, value)
            if dat.par.valuechange.eval() and value != prev:
                dat.module.onValueChange(chan, 0, float(value), prev)
            if dat.par.offtoon.eval() and prev <= 0 < value:
                dat.module.onOffToOn(chan, 0, float(value), prev)

    def chop_change(self, chop_exec: OP, channel: str, val: float, prev: float = 0.0) -> None:
        """A channel of the watched CHOP changed: call the CHOP Execute DAT's onValueChange."""
        chop = chop_exec.parent().op(chop_exec.par.chop.eval())
        chop_exec.module.onValueChange(Channel(chop, channel, 0, val), 0, val, prev)


def fresh() -> FakeTD:
    """A new, empty fake TouchDesigner session (``/project1`` exists)."""
    return FakeTD()
