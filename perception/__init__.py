"""From a camera stream to what matters: sources, frame buffer, keyframe samplers, encoders, pose.

Where things are (each module imports only numpy/cv2/torch/av/rosbags/transformers and ``common``,
never another package of ours; heavy modules are imported by their users, not here):

- ``frames.Frame`` and ``sources`` (``VideoFileSource``, ``ArraySource``, ``EnvSource``,
  ``RosbagSource``, ``open_source``); ``buffer.FrameBuffer``; ``videoio.write_video``.
- ``sampling``: ``get_sampler(name)`` -> ``Sampler.select(frames_or_features, budget, query)``
  (uniform, motion, query, streaming) and ``StreamingKeyframes`` for live streams.
- ``image.preprocess_images``: the one image preprocessing of every encoder (uint8 frames ->
  float [0, 1] at the encoder's size); ``encoders``: vision backbones (``build_vision_encoder``,
  ``load_vision_encoder``); ``clip``: the small CLIP-style frame-text encoder (``train_clip``,
  ``load_encoder``).
- ``text``: tokenizers behind one interface and one save format (``train_bpe``,
  ``byte_tokenizer``, ``word_tokenizer``, ``PretrainedTokenizer``, ``load_tokenizer``); ``lm``: the
  one causal-LM builder (``build_lm`` tiny / pretrained / saved, LoRA) and the KV-cache argument's
  name (``cache_kwarg``, ``cache_of``).
- ``pose``: ``CuePoseEstimator``, ``CueTracker``, ``pose.objects.ObjectPoseEstimator``,
  ``pose.metrics`` (BOP), ``pose.model`` (``cue_model``, ``box_model``, ``cylinder_model``).
"""
