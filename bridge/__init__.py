"""avatar-bridge: a daemon between TouchDesigner and a real-time AI avatar pipeline.

Frames come from a source (Spout, NDI, camera, video file), run through a chain of
stages (pose -> avatar -> person alpha) and leave as RGBA frames through a sink.
"""

__version__ = "0.1.0"
