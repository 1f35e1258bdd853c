"""Our own vision pipeline on LiteRT: MediaPipe's person models without the mediapipe package.

The models (Apache-2.0) ship in :file:`bridge/vision/models/` (see its NOTICE).
"""
