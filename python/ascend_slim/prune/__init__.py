"""Pruning: channel groups from the model structure, importance, planner, surgery, channel correspondence and
least-squares reconstruction; unstructured magnitude."""

from .correspondence import ConvCorrespondence, channel_correspondence
from .groups import ChannelGraph, build_graph
from .importance import BNScaleImportance, ConsumerOutputImportance, FilterNormImportance, Importance, get_importance
from .planner import PrunePlan, Thresholds, layer_table
from .pruner import PruneResult, prune_channels
from .reconstruct import ReconstructionReport, reconstruct
from .surgery import mask_model, prune_model
from .uniform import plan_uniform, plan_uniform_target

__all__ = ["BNScaleImportance", "ChannelGraph", "ConsumerOutputImportance", "ConvCorrespondence",
           "FilterNormImportance", "Importance", "PrunePlan", "PruneResult", "ReconstructionReport", "Thresholds",
           "build_graph", "channel_correspondence", "get_importance", "layer_table", "mask_model", "plan_uniform",
           "plan_uniform_target", "prune_channels", "prune_model", "reconstruct"]
