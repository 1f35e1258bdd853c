"""CHOP Execute DAT callbacks (``midi_exec``) on the merged MIDI channels (MIDI In Map
CHOP sliders/buttons and MIDI In CHOP controllers): each change goes to the extension,
which looks the channel up in the ``midi_map`` table. Callback signature from
docs.derivative.ca/CHOP_Execute_DAT."""


def onValueChange(channel, sampleIndex, val, prev):
    ext = getattr(parent().ext, "AvatarBridgeExt", None)
    if ext is not None:
        ext.OnMidi(channel.name, val)
    return
