"""OSC In DAT callbacks (``oscin``): every message from the daemon goes to the control
COMP's extension. Signature from docs.derivative.ca/OSC_In_DAT (TouchDesigner 2022+)."""


def onReceiveOSC(dat, rowIndex, message, bytes, timeStamp, address, args, peer):
    ext = getattr(parent().ext, "AvatarBridgeExt", None)
    if ext is not None:
        ext.OnOSC(address, args)
    return
