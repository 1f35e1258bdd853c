"""Parameter Execute DAT callbacks (``panel_exec``), watching the control COMP's custom
parameters: a change (once a frame) or a pulse goes to the extension, which sends it to
the daemon. Names from docs.derivative.ca/Parameter_Execute_DAT; ``onValueChange`` is
``(par, val, prev)`` in the Feb 2026 docs copy (ParameterexecuteDAT_Class); earlier code
here assumed ``(par, prev)``, so the previous value is taken as the last argument and
either signature works."""


def _ext():
    return getattr(parent().ext, "AvatarBridgeExt", None)


def onValueChange(par, *args):
    ext = _ext()
    if ext is not None:
        ext.OnParValueChange(par, args[-1] if args else None)
    return


def onPulse(par):
    ext = _ext()
    if ext is not None:
        ext.OnParPulse(par)
    return
