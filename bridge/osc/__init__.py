"""The OSC control surface: ``/bridge/<stage>/<param>`` generated from the stage configs.

One module per job:

* :mod:`bridge.osc.schema`: every address, its type, range and default (``avatar-bridge osc-schema``);
* :mod:`bridge.osc.server`: the UDP server thread (python-osc), allow-list, malformed-datagram counting;
* :mod:`bridge.osc.values`: what TouchDesigner sends -> the field's type (floats for ints and toggles, ...);
* :mod:`bridge.osc.controls`: what each address does (set a parameter, switch preset, bypass, reload, ping);
* :mod:`bridge.osc.status`: what goes back: acks, errors, pong and the 1 Hz status;
* :mod:`bridge.osc.daemon`: the ``avatar-bridge run`` options (``--osc-*``) that start it all.
"""
