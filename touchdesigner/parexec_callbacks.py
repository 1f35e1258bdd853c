"""Parameter Execute DAT callbacks (``panel_exec``), watching the control COMP's custom
parameters: a change or a pulse goes to the extension, which sends it to the daemon.
Callback names from docs.derivative.ca/Parameter_Execute_DAT."""


def _ext():
    return getattr(parent().ext, "AvatarBridgeExt", None)


def onValueChange(par, prev):
    ext = _ext()
    if ext is not None:
        ext.OnParValueChange(par, prev)
    return


def onPulse(par):
    ext = _ext()
    if ext is not None:
        ext.OnParPulse(par)
    return
