"""SpikeMax spike-count losses and decision metrics for spiking neural networks.

Framework-agnostic core over time-first spike tensors ``[T, B, N]``; imports neither snnTorch nor Norse.
"""

from . import functional, metrics, modules, reference
from .functional import mse_count, spikemax_g, spikemax_s
from .metrics import (
    accuracy,
    accuracy_over_time,
    predict,
    spike_counts,
    synaptic_operations,
    time_to_decision,
)
from .modules import MSECountLoss, SpikeMaxGLoss, SpikeMaxSLoss

__version__ = "0.1.0"

__all__ = [
    "functional",
    "metrics",
    "modules",
    "reference",
    "spikemax_g",
    "spikemax_s",
    "mse_count",
    "spike_counts",
    "predict",
    "accuracy",
    "accuracy_over_time",
    "time_to_decision",
    "synaptic_operations",
    "SpikeMaxGLoss",
    "SpikeMaxSLoss",
    "MSECountLoss",
]
