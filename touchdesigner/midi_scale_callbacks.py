"""Script CHOP callbacks (``midi_scaled``): the MIDI channels, scaled by the ``midi_map``
table, as one channel per panel parameter named ``<comp name>:<Parameter>``; the
``midi_out`` Null CHOP exports them to the COMP's parameters (Export Method "Channel Name
is Path:Parameter", CHOP_Export). The extension leaves out a parameter the user bound,
exported elsewhere or gave an expression. Callback name and signature from
docs.derivative.ca/ScriptCHOP_Class (onCook(scriptOp))."""


def onCook(scriptOp):
    scriptOp.clear()
    ext = getattr(parent().ext, "AvatarBridgeExt", None)
    if ext is not None:
        ext.MidiCook(scriptOp)
    return
