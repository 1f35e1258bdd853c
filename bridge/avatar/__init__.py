"""The avatar engine behind the ``avatar`` stage (:mod:`bridge.stages.avatar`).

* :mod:`bridge.avatar.models`: model families, the registry of known models, where
  they live on disk, family checks and loading them with diffusers;
* :mod:`bridge.avatar.stream`: the StreamDiffusion-style real-time img2img engine.

Nothing here imports diffusers or transformers at import time.
"""
