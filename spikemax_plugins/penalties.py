"""Activity regularisers: penalties on the firing rates of any layer, added to a loss to keep a network sparse.

Hidden layers that fire more than they need to cost synaptic operations (energy, see
:func:`spikemax_plugins.metrics.synaptic_operations`) without improving the decision. :func:`activity_penalty`
reads one layer's spikes as firing rates per neuron and penalises the part of each rate above a target; summed
over layers and scaled, it is added to a SpikeMax loss.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch
from torch import Tensor

from . import _validation as check
from ._counts import total_counts

__all__ = ["activity_penalty"]


@dataclass(frozen=True)
class _ActivityPenaltyOptions:
    target_rate: float
    power: int
    reduction: str
    time_dim: int  # not normalised: its range depends on the rank of the spikes, known only at the call


def _activity_penalty_options(
    target_rate: object, power: object, reduction: object, time_dim: object
) -> _ActivityPenaltyOptions:
    """The validated options (the function and the module call this)."""
    return _ActivityPenaltyOptions(
        target_rate=check.check_real(
            target_rate, "target_rate", minimum=0.0, maximum=1.0, why=" (a firing rate: spikes per neuron and step)"
        ),
        power=check.check_int(power, "power", minimum=1, maximum=2, why=" (1: mean excess rate, 2: its square)"),
        reduction=check.check_choice(reduction, "reduction", check.REDUCTIONS),
        # Only the type is known before the spikes come (any number of neuron dimensions): check_layer_spikes
        # checks the range.
        time_dim=check.check_int(time_dim, "time_dim", minimum=-sys.maxsize - 1),
    )


def _activity_penalty(spikes: Tensor, options: _ActivityPenaltyOptions) -> Tensor:
    """The activity penalty for validated options (see :func:`activity_penalty`)."""
    time_dim, num_steps, batch_size, num_neurons = check.check_layer_spikes(spikes, options.time_dim)
    # Every neuron is its own group (C = the size of the counts' last dimension): counts [B, *neurons], summed in
    # the losses' accumulation dtype, then one row per sample.
    last_neuron_dim = spikes.shape[-2] if time_dim == spikes.dim() - 1 else spikes.shape[-1]
    counts = total_counts(spikes, last_neuron_dim, time_dim).reshape(batch_size, num_neurons)
    if check.values_checkable(spikes):
        check.check_values(counts)
    excess = torch.relu(counts / num_steps - options.target_rate)  # subgradient 0 at the kink, as torch.relu
    per_sample = (excess if options.power == 1 else excess.square()).mean(-1)  # [B]
    if options.reduction == "none":
        return per_sample
    return per_sample.sum() if options.reduction == "sum" else per_sample.mean()


def activity_penalty(
    spikes: Tensor,
    *,
    target_rate: float = 0.0,
    power: int = 1,
    reduction: str = "mean",
    time_dim: int = 0,
) -> Tensor:
    r"""Activity penalty of one layer: the mean over neurons of each firing rate's excess over ``target_rate``.

    With the firing rates ``r[b, i] = (1 / T) sum_t spikes[t, b, i]`` (neurons ``i`` of any shape, flattened),
    sample ``b``'s penalty is ``mean_i relu(r[b, i] - target_rate) ** power``: 0 for a layer that fires at most
    ``target_rate`` per neuron and step, and growing with every spike beyond. ``target_rate=0`` and ``power=1``
    penalise the mean firing rate itself. At ``r = target_rate`` the gradient is 0 (as :func:`torch.relu`'s).

    Args:
        spikes: the spikes of any layer, binary or graded, ``>= 0``.
        target_rate: the rate per neuron and step below which firing is free, in ``[0, 1]``.
        power: 1 (the mean excess rate) or 2 (its mean square: many small excesses cost less than one large).
        reduction: ``"mean"`` or ``"sum"`` over the batch, or ``"none"``.
        time_dim: the time dimension of ``spikes``; the others are batch, then the neuron dimensions.

    Shape:
        - spikes: ``(T, B, *neurons)`` with ``time_dim=0``, e.g. ``(T, B, N)`` or ``(T, B, C, H, W)``; another
          layout with ``time_dim`` (``(B, N, T)`` with ``time_dim=-1``), batch first among the others
        - output: scalar, or ``(B)`` with ``reduction="none"``

    Half-precision spikes are counted and the penalty computed in float32 (the losses'
    accumulation dtype); float64 stays float64. As in the losses, the values are checked through the spike counts
    (finite and ``>= 0``) in one host synchronisation, skipped with :func:`spikemax_plugins.set_value_checks`
    off, under ``torch.compile`` and ``torch.func`` and for meta tensors.
    """
    return _activity_penalty(spikes, _activity_penalty_options(target_rate, power, reduction, time_dim))
