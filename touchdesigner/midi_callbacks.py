"""CHOP Execute DAT callbacks (``midi_exec``) on the merged MIDI channels (MIDI In Map
CHOP sliders/buttons and MIDI In CHOP controllers): each change goes to the extension, for
MIDI learn and for buttons mapped to pulses (values reach the parameters by CHOP export,
see ``midi_scale_callbacks.py``). Signature from docs.derivative.ca/ChopexecuteDAT_Class."""


def onValueChange(channel, sampleIndex, val, prev):
    ext = getattr(parent().ext, "AvatarBridgeExt", None)
    if ext is not None:
        ext.OnMidi(channel.name, val)
    return
