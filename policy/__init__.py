"""The OpenVLA-style vision-language-action policy: model, action tokenizer, training, inference.

Public faces (import the modules directly; this package imports nothing heavy):

- ``policy.predict.Policy.from_pretrained(dir)`` then ``.predict(obs, instruction) -> [7]``,
  ``.predict_batch(obs_list, instructions, indices=None) -> [B, 7]``,
  ``.predict_chunk(obs, instruction) -> [K, 7]``, ``.predict_chunk_batch(...) -> [B, K, 7]``,
  ``.reset(index=None)``. ``obs`` = {"agentview": uint8 [H, W, 3], "wrist": ..., "state": [D]}.
- ``policy.modeling_vla.VLAModel`` (``build``, ``save_pretrained``, ``from_pretrained``) and
  ``policy.configuration_vla.VLAConfig``.
- ``policy.action_tokenizer.ActionTokenizer``: q01/q99 normalisation, 256 bins.
- ``policy.train.train(TrainConfig, VLAConfig, dataset=None)``; ``embodied train``.
- ``policy.evaluate.evaluate(EvalConfig)``; ``embodied eval``.
"""
