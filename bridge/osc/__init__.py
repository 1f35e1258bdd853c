"""The OSC control surface: ``/bridge/<stage>/<param>`` generated from the stage configs."""
