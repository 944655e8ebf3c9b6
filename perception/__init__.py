"""From a camera stream to what matters: sources, frame buffer, keyframe samplers, encoders, pose."""
