"""Pose of known rigid objects: models, metrics, segmentation, initial fits, a differentiable
renderer, render-and-compare refinement, tracking, and the estimators that chain them."""

from perception.pose.estimator import CuePoseEstimator, PoseEstimator
from perception.pose.model import RigidObjectModel, box_model, cue_model, cylinder_model
from perception.pose.track import CueTracker

__all__ = ["CuePoseEstimator", "PoseEstimator", "RigidObjectModel", "CueTracker", "cue_model",
           "box_model", "cylinder_model"]
