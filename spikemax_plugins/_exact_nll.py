"""The exact gradient of probability-mode SpikeMax at smoothing 0, where a silent class has a count logit of -inf.

Autograd through ``log(c)`` gives ``0 / 0 = NaN`` at a silent class although the derivative is finite; the
autograd Functions here give the closed form (see :class:`ExactProbabilityNLL`). Used by
:mod:`spikemax_plugins.functional` only.
"""

from __future__ import annotations

import torch
from torch import Tensor


class ExactProbabilityNLL(torch.autograd.Function):
    """Probability mode with smoothing 0, where a silent class has a count logit of -inf.

    Per window ``s`` and sample ``b``, with the target mass ``a_i = distribution_i * weight_i``,
    ``L = sum_i a_i (log sum_j c_j^(1/T) - log(c_i) / T)``. Autograd through ``log(c)`` would give ``0 / 0 = NaN``
    for a silent class although the derivative is finite, ``dL/dc_i = (A p_i - a_i) / (T c_i)`` with
    ``A = sum_i a_i``, which is ``A / sum_j c_j`` for a silent non-target at T = 1. Conventions where the
    formula is singular: a silent class carrying target mass gives ``L = +inf`` and ``dL/dc_i = -inf`` (never
    NaN); when every class is silent the non-targets get 0; ``dL/da_i = -log p_i`` is ``+inf`` for a silent
    class; a zero weight or zero target share multiplies an infinite factor to exactly 0, since the loss does
    not depend on it there.

    Differentiable once, in reverse mode, in every input (counts, target distribution, weight). A second
    derivative or forward-mode differentiation raises (see :class:`_FirstDerivativeOnly`) rather than being
    silently wrong. ``torch.func.vmap`` / ``grad`` work.

    Shapes: counts ``[S, B, C]``, distribution ``[B, C]``, weight ``[C]`` or None; output ``[S, B]``.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(counts: Tensor, distribution: Tensor, weight: Tensor | None, temperature: float) -> Tensor:
        mass = distribution if weight is None else distribution * weight
        logits = counts.log() / temperature
        log_normaliser = torch.logsumexp(logits, dim=-1)
        total_mass = mass.sum(-1)
        has_mass = mass > 0
        # a * z with 0 * (-inf) = 0: a class without target mass adds nothing, even when silent.
        target_term = torch.where(has_mass, mass * logits, 0).sum(-1)
        normaliser_term = torch.where(total_mass > 0, total_mass * log_normaliser, 0)
        silent_target = (has_mass & (counts == 0)).any(-1)
        return torch.where(silent_target, torch.inf, normaliser_term - target_term)

    @staticmethod
    def setup_context(ctx, inputs, output):  # type: ignore[override]
        counts, distribution, weight, temperature = inputs
        ctx.save_for_backward(counts, distribution, weight)
        ctx.temperature = temperature

    @staticmethod
    def backward(ctx, grad_loss):  # type: ignore[override]
        counts, distribution, weight = ctx.saved_tensors
        needs_counts, needs_distribution, needs_weight = ctx.needs_input_grad[:3]
        graph_wanted = torch.is_grad_enabled()  # create_graph=True or a torch.func transform
        with torch.no_grad():
            gradients = _exact_nll_gradients(
                counts, distribution, weight, ctx.temperature, grad_loss, needs_counts, needs_distribution, needs_weight
            )
        if graph_wanted:
            # Tied to every input and to the incoming gradient, so that differentiating any of them again raises.
            anchors = (counts, distribution, weight, grad_loss)
            first_only = _FirstDerivativeOnly if torch.compiler.is_compiling() else _EagerFirstDerivativeOnly
            gradients = tuple(
                None if gradient is None else first_only.apply(gradient, *anchors) for gradient in gradients
            )
        return (*gradients, None)


def _exact_nll_gradients(
    counts: Tensor,
    distribution: Tensor,
    weight: Tensor | None,
    temperature: float,
    grad_loss: Tensor,
    needs_counts: bool,
    needs_distribution: bool,
    needs_weight: bool,
) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """The closed-form first derivatives of :class:`ExactProbabilityNLL` (see its docstring)."""
    mass = distribution if weight is None else distribution * weight
    logits = counts.log() / temperature
    log_normaliser = torch.logsumexp(logits, dim=-1, keepdim=True)  # [S, B, 1]
    all_silent = torch.isneginf(log_normaliser)
    upstream = grad_loss.unsqueeze(-1)
    unused = upstream == 0  # a window whose loss does not matter contributes exactly 0, never 0 * inf
    grad_counts = grad_distribution = grad_weight = None
    if needs_counts:
        total_mass = mass.sum(-1, keepdim=True)
        has_mass = mass > 0
        # p_i / c_i = c_i^(1/T - 1) / sum_j c_j^(1/T) in the log domain; xlogy makes 0 * log 0 = 0 at T = 1, so a
        # silent class gets the finite 1 / sum_j c_j there.
        probability_over_count = torch.exp(torch.xlogy(1.0 / temperature - 1.0, counts) - log_normaliser)
        mass_over_count = torch.where(has_mass, mass / counts, 0)
        derivative = (torch.where(total_mass > 0, total_mass * probability_over_count, 0) - mass_over_count)
        derivative = torch.where(all_silent, 0.0, derivative / temperature)
        # A silent target class: -a_i / c_i = -inf dominates (A p_i / c_i may be +inf too when T > 1; the limit
        # of their difference is still -inf).
        derivative = torch.where(has_mass & (counts == 0), -torch.inf, derivative)
        grad_counts = torch.where(unused, 0, upstream * derivative)
    if needs_distribution or needs_weight:
        negative_log_probability = torch.where(all_silent, torch.inf, log_normaliser - logits)  # [S, B, C]
        grad_mass = torch.where(unused, 0, upstream * negative_log_probability).sum(0)  # [B, C]
        if needs_distribution:
            grad_distribution = grad_mass if weight is None else torch.where(weight == 0, 0, grad_mass * weight)
        if needs_weight:
            grad_weight = torch.where(distribution == 0, 0, grad_mass * distribution).sum(0)
    return grad_counts, grad_distribution, grad_weight


class _FirstDerivativeOnly(torch.autograd.Function):
    """Identity on a first derivative; differentiating it again raises a clear error.

    ``torch.autograd.function.once_differentiable`` only guards when the incoming gradient requires grad, so a
    second derivative through the smoothing-0 loss came out as a silent 0. ``anchor`` ties the output into the
    graph of the spikes, so that any further differentiation reaches this node.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(
        gradient: Tensor, counts: Tensor, distribution: Tensor, weight: Tensor | None, grad_loss: Tensor
    ) -> Tensor:
        return gradient.clone()

    @staticmethod
    def setup_context(ctx, inputs, output):  # type: ignore[override]
        pass

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        raise RuntimeError(_ONCE_DIFFERENTIABLE)


def _refuse_forward_mode(ctx, *tangents):  # type: ignore[no-untyped-def]
    raise RuntimeError(_ONCE_DIFFERENTIABLE)


# Forward mode (jvp, jacfwd, hessian) must raise the error above rather than torch's generic one. Dynamo cannot
# trace an autograd.Function that defines jvp, so the eager twins carry it and torch.compile traces the classes
# above (forward mode is not traced anyway).
class EagerExactProbabilityNLL(ExactProbabilityNLL):
    jvp = staticmethod(_refuse_forward_mode)


class _EagerFirstDerivativeOnly(_FirstDerivativeOnly):
    jvp = staticmethod(_refuse_forward_mode)


_ONCE_DIFFERENTIABLE = (
    "spikemax_g / spikemax_s with mode='probability' and smoothing=0 are differentiable once, in reverse mode: "
    "their closed-form gradient (exact at silent classes) has no second derivative and no forward mode "
    "implemented, so create_graph=True followed by another differentiation, torch.func.grad of a gradient, "
    "torch.func.jvp, jacfwd and hessian are not supported. Use smoothing > 0 (e.g. 1e-6), which is "
    "differentiable any number of times, in either mode."
)
