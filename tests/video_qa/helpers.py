"""Tiny configs shared by the video QA tests: small enough that a model overfits in seconds."""

from video_qa.configuration_videolm import VideoLMConfig


def tiny_config(**overrides) -> VideoLMConfig:
    base = dict(image_size=16, patch_size=4, vision_hidden=32, vision_layers=1, vision_heads=2,
                tokens_per_frame=2, mining_heads=2, num_frames=3, lm_hidden=64, lm_layers=2,
                lm_heads=2, lm_intermediate=128, max_positions=256, max_answer_bytes=12)
    base.update(overrides)
    return VideoLMConfig(**base)
