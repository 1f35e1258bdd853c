"""Execute DAT callbacks (``frame_exec``): the extension's once-a-frame work (daemon log,
heartbeat watchdog, pings, reconnects) and stopping a daemon started from TouchDesigner
when the project closes. Callback names from docs.derivative.ca/Execute_DAT."""


def _ext():
    return getattr(parent().ext, "AvatarBridgeExt", None)


def onFrameStart(frame):
    ext = _ext()
    if ext is not None:
        ext.Tick()
    return


def onExit():
    ext = _ext()
    if ext is not None:
        ext.Exit()
    return
