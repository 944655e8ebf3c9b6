"""From a camera stream to what matters: sources, frame buffer, keyframe samplers, encoders, pose.

Where things are (each module imports only numpy/cv2/torch/av/rosbags, never another package of
ours; heavy modules are imported by their users, not here):

- ``frames.Frame`` and ``sources`` (``VideoFileSource``, ``ArraySource``, ``EnvSource``,
  ``RosbagSource``, ``open_source``); ``buffer.FrameBuffer``; ``videoio.write_video``.
- ``sampling``: ``get_sampler(name)`` -> ``Sampler.select(frames_or_features, budget, query)``
  (uniform, motion, query, streaming) and ``StreamingKeyframes`` for live streams.
- ``clip``: the small CLIP-style frame-text encoder (``train_clip``, ``load_encoder``).
- ``pose``: ``CuePoseEstimator``, ``CueTracker``, ``pose.objects.ObjectPoseEstimator``,
  ``pose.metrics`` (BOP), ``pose.model`` (``cue_model``, ``box_model``, ``cylinder_model``).
"""
