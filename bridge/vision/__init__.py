"""Our own vision pipeline on LiteRT: MediaPipe's person models without the mediapipe package.

The models (Apache-2.0) ship in :file:`bridge/vision/models/` (see its NOTICE).

Modules, one job each:

* :mod:`bridge.vision.runtime`: load a bundled ``.tflite`` model on LiteRT and run it.
* :mod:`bridge.vision.ssd`: SSD anchors, box/keypoint decoding, weighted non-max suppression.
* :mod:`bridge.vision.pose_detector`: the BlazePose person detector and its alignment region.
* :mod:`bridge.vision.pose_landmarks`: the BlazePose landmark model on one person's region.
* :mod:`bridge.vision.one_euro`: the One Euro filter (landmark smoothing).
* :mod:`bridge.vision.blazepose`: people in a video: detect, track, smooth
  (:class:`~bridge.vision.blazepose.PoseTracker`, :class:`~bridge.vision.blazepose.Person`,
  :func:`~bridge.vision.blazepose.paste_masks`).
* :mod:`bridge.vision.object_cut`: take a held object out of a person matte with the pose
  masks; :func:`~bridge.vision.object_cut.image_shift` (phase correlation).
"""
