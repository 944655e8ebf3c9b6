"""The OpenVLA-style vision-language-action policy: model, action tokenizer, training, inference.

Public faces (import the modules directly; this package imports nothing heavy):

- ``policy.base.BasePolicy``: the one policy interface, ``predict_chunk(observations,
  instructions) -> [B, K, 7]`` (one stateless model call), ``reset()``, ``describe()``; numpy only.
  ``obs`` = {"agentview": uint8 [H, W, 3], "wrist": ..., "state": [D]}.
- ``policy.predict.Policy.from_pretrained(dir)``: the torch VLA behind that interface.
- ``policy.executor.ChunkExecutor(policy, execution="open_loop" | "ensemble")``: plays chunks one
  action per step for one or many robots, ``.act(obs_list, instructions, indices=None) -> [B, 7]``,
  ``.reset(index=None)``. Every caller (eval, DAgger, the agent, the ROS node) uses it.
- ``policy.modeling_vla.VLAModel`` (``build``, ``save_pretrained``, ``from_pretrained``) and
  ``policy.configuration_vla.VLAConfig``.
- ``policy.action_tokenizer.ActionTokenizer``: q01/q99 normalisation, 256 bins.
- ``policy.train.train(TrainConfig, VLAConfig, dataset=None)``; ``embodied train``.
- ``policy.evaluate.evaluate(EvalConfig)``; ``embodied eval``.
"""
