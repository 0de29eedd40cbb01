"""Every equality, conversion factor and difference stated in docs/migration.md, checked numerically.

snnTorch claims run against the installed snnTorch. lava-dl cannot be installed here (its wheels need
Python < 3.11), so its loss is TRANSCRIBED below from the lava-dl 0.6.0 source; the checks compare our losses
with that transcription, not with lava-dl itself.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import spikemax_plugins as smx

SF = pytest.importorskip("snntorch.functional", reason="the snnTorch claims need snnTorch")

TIGHT = {"rtol": 1e-6, "atol": 1e-6}  # float32 rounding: the two sides add the same numbers in another order


def random_spikes(num_steps=20, batch_size=6, num_outputs=5, seed=0, probability=0.3):
    generator = torch.Generator().manual_seed(seed)
    spikes = (torch.rand(num_steps, batch_size, num_outputs, generator=generator) < probability).float()
    return spikes, generator


def random_case(num_steps=20, batch_size=6, num_classes=5, seed=0):
    spikes, generator = random_spikes(num_steps, batch_size, num_classes, seed)
    target = torch.randint(0, num_classes, (batch_size,), generator=generator)
    weight = torch.rand(num_classes, generator=generator) + 0.5
    return spikes, target, weight


# ---------------------------------------------------------------------------------------------------------------
# snnTorch ce_count_loss
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("seed", range(5))
def test_ce_count_loss_is_spikemax_g_softmax_values_and_gradients(reduction, seed):
    spikes, target, _ = random_case(seed=seed)
    ours_input = spikes.clone().requires_grad_()
    theirs_input = spikes.clone().requires_grad_()
    ours = smx.spikemax_g(ours_input, target, mode="softmax", reduction=reduction)
    theirs = SF.ce_count_loss(reduction=reduction)(theirs_input, target)
    torch.testing.assert_close(ours, theirs, **TIGHT)
    ours.sum().backward()
    theirs.sum().backward()
    torch.testing.assert_close(ours_input.grad, theirs_input.grad, **TIGHT)


def test_ce_count_loss_population_code_is_spikemax_g_with_num_classes():
    spikes, generator = random_spikes(num_outputs=12)
    target = torch.randint(0, 4, (6,), generator=generator)
    theirs = SF.ce_count_loss(population_code=True, num_classes=4)(spikes, target)
    torch.testing.assert_close(smx.spikemax_g(spikes, target, mode="softmax", num_classes=4), theirs, **TIGHT)


def test_ce_count_loss_weighted_mean_is_ours_times_summed_weights_over_batch():
    spikes, target, weight = random_case()
    theirs = SF.ce_count_loss(weight=weight)(spikes, target)
    ours = smx.spikemax_g(spikes, target, mode="softmax", weight=weight)
    torch.testing.assert_close(theirs, ours * weight[target].sum() / target.shape[0], **TIGHT)


def test_ce_count_loss_weighted_sum_returns_ours_unreduced():
    spikes, target, weight = random_case()
    theirs = SF.ce_count_loss(weight=weight, reduction="sum")(spikes, target)
    assert theirs.shape == target.shape  # snnTorch returns the per-sample vector, not a sum
    torch.testing.assert_close(
        theirs, smx.spikemax_g(spikes, target, mode="softmax", weight=weight, reduction="none"), **TIGHT
    )


# ---------------------------------------------------------------------------------------------------------------
# snnTorch mse_count_loss
# ---------------------------------------------------------------------------------------------------------------


def test_mse_count_loss_mean_is_ours_over_num_steps():
    spikes, target, _ = random_case(num_steps=20)  # 20 * 0.75 and 20 * 0.25 are integers: no truncation
    theirs = SF.mse_count_loss(correct_rate=0.75, incorrect_rate=0.25)(spikes, target)
    ours = smx.mse_count(spikes, target, true_rate=0.75, false_rate=0.25)
    torch.testing.assert_close(theirs, ours / 20, **TIGHT)


def test_mse_count_loss_sum_is_ours_times_classes_over_num_steps():
    spikes, target, _ = random_case(num_steps=20, num_classes=5)
    theirs = SF.mse_count_loss(correct_rate=0.75, incorrect_rate=0.25, reduction="sum")(spikes, target)
    ours = smx.mse_count(spikes, target, true_rate=0.75, false_rate=0.25, reduction="sum")
    torch.testing.assert_close(theirs, ours * 5 / 20, **TIGHT)


def test_mse_count_loss_none_is_per_class_ours_is_class_mean():
    spikes, target, _ = random_case(num_steps=20, num_classes=5)
    theirs = SF.mse_count_loss(correct_rate=0.75, incorrect_rate=0.25, reduction="none")(spikes, target)
    ours = smx.mse_count(spikes, target, true_rate=0.75, false_rate=0.25, reduction="none")
    assert theirs.shape == (6, 5) and ours.shape == (6,)
    torch.testing.assert_close(theirs.mean(-1) * 20, ours, **TIGHT)


def test_mse_count_loss_population_code_has_the_same_factor():
    spikes, generator = random_spikes(num_steps=20, num_outputs=12)
    target = torch.randint(0, 4, (6,), generator=generator)
    theirs = SF.mse_count_loss(correct_rate=0.75, incorrect_rate=0.25, population_code=True, num_classes=4)(
        spikes, target
    )
    ours = smx.mse_count(spikes, target, true_rate=0.75, false_rate=0.25, num_classes=4)
    torch.testing.assert_close(theirs, ours / 20, **TIGHT)


def test_mse_count_loss_truncates_target_counts_to_integers():
    spikes, target, _ = random_case(num_steps=10)  # 10 * 0.25 = 2.5 spikes: snnTorch aims at int(2.5) = 2
    theirs = SF.mse_count_loss(correct_rate=0.75, incorrect_rate=0.25)(spikes, target)
    truncated = smx.mse_count(spikes, target, true_rate=int(10 * 0.75) / 10, false_rate=int(10 * 0.25) / 10)
    torch.testing.assert_close(theirs, truncated / 10, **TIGHT)
    assert not torch.isclose(theirs, smx.mse_count(spikes, target, true_rate=0.75, false_rate=0.25) / 10)


def test_mse_count_loss_weight_fails_when_batch_differs_from_classes():
    spikes, target, weight = random_case(batch_size=6, num_classes=5)
    with pytest.raises(RuntimeError, match="must match the size"):
        SF.mse_count_loss(correct_rate=0.75, incorrect_rate=0.25, weight=weight)(spikes, target)
    # ours weights each sample by weight[target] for any batch size
    per_sample = smx.mse_count(spikes, target, true_rate=0.75, false_rate=0.25, reduction="none")
    weighted = smx.mse_count(spikes, target, true_rate=0.75, false_rate=0.25, weight=weight)
    torch.testing.assert_close(weighted, (per_sample * weight[target]).sum() / weight[target].sum(), **TIGHT)


def test_mse_count_loss_weight_scales_the_wrong_axis_when_batch_equals_classes():
    spikes, target, weight = random_case(batch_size=5, num_classes=5)
    theirs = SF.mse_count_loss(correct_rate=0.75, incorrect_rate=0.25, weight=weight, reduction="none")
    unweighted = SF.mse_count_loss(correct_rate=0.75, incorrect_rate=0.25, reduction="none")(spikes, target)
    # column i (class i) of every sample is scaled by weight[target[i]]: a per-class scale, not a per-sample one
    torch.testing.assert_close(theirs(spikes, target), unweighted * weight[target], **TIGHT)


# ---------------------------------------------------------------------------------------------------------------
# lava-dl SpikeMax, transcribed
# ---------------------------------------------------------------------------------------------------------------

LAVA_EPS = 1e-6


def lava_spikemax_transcription(spikes_bct, label, moving_window=None, mode="probability", reduction="sum"):
    """TRANSCRIPTION (not lava-dl itself) of ``lava.lib.dl.slayer.loss.SpikeMax.forward``, lava-dl 0.6.0.

    Input ``[batch, class, time]``. The rate is ``Rate.rate`` (mean over time) or, with a moving window,
    ``MovingWindow.rate``: a causal FIR box filter ``ones(W) / W`` with zeros before the first step, scored at
    every step. ``Rate.confidence(mode='probability')`` is ``rate / (sum(rate) + 1e-6)``; softmax mode uses
    ``log_softmax(rate)``. The per-step losses go to ``F.nll_loss`` over (batch x time) rows.
    """
    if moving_window is None:
        rate = spikes_bct.mean(-1)
        if mode == "probability":
            log_p = torch.log(rate / (rate.sum(1, keepdim=True) + LAVA_EPS))
        else:
            log_p = F.log_softmax(rate, dim=1)
        return F.nll_loss(log_p, label, reduction=reduction)
    batch_size, num_classes, num_steps = spikes_bct.shape
    rate = F.pad(spikes_bct, (moving_window - 1, 0)).unfold(-1, moving_window, 1).mean(-1)  # [B, C, T]
    if mode == "probability":
        log_p = torch.log(rate / (rate.sum(1, keepdim=True) + LAVA_EPS))
    else:
        log_p = F.log_softmax(rate, dim=1)
    step_labels = label[:, None].expand(batch_size, num_steps)
    return F.nll_loss(log_p.transpose(1, 2).reshape(-1, num_classes), step_labels.flatten(), reduction=reduction)


def lava_case(seed=0, num_steps=20, batch_size=6, num_classes=5):
    """Spikes in lava-dl's layout [B, C, T] where every class fires at least once, and ours [T, B, C]."""
    spikes, target, _ = random_case(num_steps, batch_size, num_classes, seed)
    spikes[0] = 1.0  # no silent class: lava-dl's probability mode is finite
    return spikes.permute(1, 2, 0), spikes, target


@pytest.mark.parametrize("seed", range(3))
def test_layout_transpose_from_lava(seed):
    spikes_bct, spikes, _ = lava_case(seed)
    assert torch.equal(spikes_bct.permute(2, 0, 1), spikes)


@pytest.mark.parametrize("seed", range(3))
def test_lava_softmax_is_ours_with_temperature_num_steps(seed):
    spikes_bct, spikes, target = lava_case(seed, num_steps=20)
    lava = lava_spikemax_transcription(spikes_bct, target, mode="softmax")  # reduction 'sum' by default
    torch.testing.assert_close(lava, smx.spikemax_g(spikes, target, mode="softmax", temperature=20, reduction="sum"))
    torch.testing.assert_close(
        lava, smx.spikemax_g(spikes, target, mode="softmax", temperature=20) * target.shape[0]
    )  # our default reduction is 'mean'


def test_lava_softmax_cannot_go_below_log_1_plus_9_over_e_for_ten_classes():
    spikes = torch.zeros(25, 1, 10)
    spikes[:, 0, 0] = 1.0  # the best a binary output can do: the true class fires at every step, the rest never
    target = torch.tensor([0])
    lava = lava_spikemax_transcription(spikes.permute(1, 2, 0), target, mode="softmax")
    assert lava.item() == pytest.approx(math.log(1 + 9 / math.e), abs=1e-6)
    assert lava.item() == pytest.approx(1.4612, abs=1e-4)
    ours = smx.spikemax_g(spikes, target, mode="softmax")  # temperature 1 on counts
    assert ours.item() == pytest.approx(math.log(1 + 9 * math.exp(-25)), abs=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_lava_probability_is_ours_without_smoothing_up_to_its_epsilon(seed):
    spikes_bct, spikes, target = lava_case(seed, num_steps=20)
    lava = lava_spikemax_transcription(spikes_bct, target, mode="probability", reduction="none")
    ours = smx.spikemax_g(spikes, target, smoothing=0.0, reduction="none")
    # lava-dl: log(c_y / (sum c + T * 1e-6)); ours: log(c_y / sum c). The gap is log(1 + T * 1e-6 / sum c).
    gap = torch.log1p(20 * LAVA_EPS / spikes.sum(0).sum(-1))
    torch.testing.assert_close(lava - ours, gap, rtol=1e-3, atol=1e-6)
    assert (lava - ours).abs().max() < 1e-4


def test_lava_probability_on_an_all_silent_output_is_inf_with_nan_gradients():
    spikes_bct = torch.zeros(2, 4, 10, requires_grad=True)  # the usual state of a network at initialisation
    lava = lava_spikemax_transcription(spikes_bct, torch.tensor([0, 3]))
    lava.backward()
    assert lava.item() == math.inf
    assert torch.isnan(spikes_bct.grad).all()


def test_lava_probability_on_a_silent_true_class_is_inf_with_nan_gradients():
    spikes = torch.zeros(10, 1, 4)
    spikes[:, 0, 1] = 1.0  # class 1 fires, the true class 0 is silent
    target = torch.tensor([0])
    spikes_bct = spikes.permute(1, 2, 0).clone().requires_grad_()
    lava = lava_spikemax_transcription(spikes_bct, target)
    lava.backward()
    assert lava.item() == math.inf
    assert torch.isnan(spikes_bct.grad).all()

    ours_input = spikes.clone().requires_grad_()
    ours = smx.spikemax_g(ours_input, target)  # smoothing 1: finite loss, finite gradient
    ours.backward()
    assert ours.item() == pytest.approx(-math.log(1 / 14))  # (0 + 1) / ((0 + 1) + (10 + 1) + 1 + 1)
    assert torch.isfinite(ours_input.grad).all()

    exact_input = spikes.clone().requires_grad_()
    exact = smx.spikemax_g(exact_input, target, smoothing=0.0)  # the paper's formula: +inf, never NaN
    exact.backward()
    assert exact.item() == math.inf
    gradient = exact_input.grad[0, 0]
    assert gradient[0].item() == -math.inf and not torch.isnan(exact_input.grad).any()
    assert gradient[2].item() == pytest.approx(1 / 10)  # a silent non-target class: 1 / sum(c) at temperature 1


@pytest.mark.parametrize("window", [1, 4, 20])
def test_lava_moving_window_softmax_is_ours_times_windows_plus_its_partial_first_steps(window):
    spikes_bct, spikes, target = lava_case(num_steps=20)
    per_step = lava_spikemax_transcription(spikes_bct, target, window, mode="softmax", reduction="none")
    per_step = per_step.reshape(target.shape[0], 20)  # [B, T]: lava-dl scores every step, partial windows too
    full_windows = per_step[:, window - 1 :].sum()
    ours = smx.spikemax_s(spikes, target, window=window, mode="softmax", temperature=window, reduction="sum")
    torch.testing.assert_close(full_windows, ours * (20 - window + 1))
    torch.testing.assert_close(per_step.sum(), lava_spikemax_transcription(spikes_bct, target, window, "softmax"))


def test_lava_moving_window_probability_is_inf_while_the_true_class_has_not_fired():
    spikes = torch.ones(10, 1, 3)
    spikes[:3, 0, 0] = 0.0  # the true class 0 starts firing at step 3
    target = torch.tensor([0])
    lava = lava_spikemax_transcription(spikes.permute(1, 2, 0), target, moving_window=2)
    assert lava.item() == math.inf
    ours = smx.spikemax_s(spikes, target, window=2)  # smoothing 1: finite
    assert math.isfinite(ours.item())


def test_lava_mean_reduction_divides_by_batch_times_steps_with_a_moving_window():
    spikes_bct, _, target = lava_case()
    total = lava_spikemax_transcription(spikes_bct, target, 4, "softmax", reduction="sum")
    mean = lava_spikemax_transcription(spikes_bct, target, 4, "softmax", reduction="mean")
    torch.testing.assert_close(mean, total / (target.shape[0] * 20))


def test_accuracy_rate_scores_an_all_silent_output_as_class_zero_ours_as_wrong():
    silent = torch.zeros(10, 4, 5)
    target = torch.tensor([0, 0, 1, 2])
    assert SF.accuracy_rate(silent, target) == 0.5  # the two samples of class 0 count as right
    assert smx.accuracy(silent, target).item() == 0.0
