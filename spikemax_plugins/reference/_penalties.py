"""NumPy twin of spikemax_plugins.penalties."""

from __future__ import annotations

import numpy as np

from ._losses_and_metrics import _reduce

# ------------------------------------------------------------------------------------------------------------------
# Activity penalty (twin of spikemax_plugins.penalties)
#
# Spikes of any layer, time at ``time_dim``, then batch, then any neuron shape (read in row-major order). Rates are
# sums over the steps divided by T, one neuron at a time; the gradient is written out from the definition.
# ------------------------------------------------------------------------------------------------------------------


def _layer_rates(spikes, time_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The spikes as ``[T, B, N]`` and the firing rates ``[B, N]``: ``r[b, i] = (1 / T) sum_t spikes[t, b, i]``."""
    spikes = np.asarray(spikes, dtype=np.float64)
    time_first = np.moveaxis(spikes, time_dim, 0)
    num_steps, batch_size = time_first.shape[0], time_first.shape[1]
    flat = time_first.reshape(num_steps, batch_size, -1)
    rates = np.zeros((batch_size, flat.shape[2]))
    for b in range(batch_size):
        for i in range(flat.shape[2]):
            total = 0.0
            for t in range(num_steps):
                total += float(flat[t, b, i])
            rates[b, i] = total / num_steps
    return flat, rates


def activity_penalty(
    spikes, *, target_rate: float = 0.0, power: int = 1, reduction: str = "mean", time_dim: int = 0
):
    """Per sample ``mean_i max(r[b, i] - target_rate, 0) ** power``, then ``reduction`` over the batch."""
    _, rates = _layer_rates(spikes, time_dim)
    batch_size, num_neurons = rates.shape
    per_sample = np.zeros(batch_size)
    for b in range(batch_size):
        for i in range(num_neurons):
            excess = max(rates[b, i] - target_rate, 0.0)
            per_sample[b] += excess**power / num_neurons
    return _reduce(per_sample, reduction, float(batch_size))


def activity_penalty_gradient(
    spikes, *, target_rate: float = 0.0, power: int = 1, reduction: str = "mean", time_dim: int = 0
) -> np.ndarray:
    """d penalty / d spikes, in the spikes' shape; with ``reduction="none"`` the gradient of the sum over samples.

    Every step of neuron i of sample b gets ``power * excess ** (power - 1) / (N * T)`` (divided by B for "mean")
    where ``excess = r[b, i] - target_rate > 0``, and 0 where ``r[b, i] <= target_rate`` (0 at the kink, as
    torch.relu).
    """
    spikes = np.asarray(spikes, dtype=np.float64)
    flat, rates = _layer_rates(spikes, time_dim)
    num_steps, batch_size, num_neurons = flat.shape
    scale = 1.0 / batch_size if reduction == "mean" else 1.0
    gradient = np.zeros(flat.shape)
    for b in range(batch_size):
        for i in range(num_neurons):
            excess = rates[b, i] - target_rate
            if excess <= 0:
                continue
            derivative = (1.0 if power == 1 else 2.0 * excess) / (num_neurons * num_steps) * scale
            for t in range(num_steps):
                gradient[t, b, i] = derivative
    time_first_shape = np.moveaxis(spikes, time_dim, 0).shape
    return np.moveaxis(gradient.reshape(time_first_shape), 0, time_dim)
