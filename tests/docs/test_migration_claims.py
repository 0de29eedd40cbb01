"""Every equality, conversion factor, difference and number stated in docs/migration.md, checked numerically.

snnTorch claims run against the installed snnTorch. lava-dl cannot be installed here (its wheels need
Python < 3.11) and the SpikeMax authors' code needs slayerPytorch's CUDA extension, so their few lines of torch
code are TRANSCRIBED below (each transcription is marked as such and names its source); the checks compare our
losses with those transcriptions, not with lava-dl or the authors' code themselves. The numbers the page quotes
(shares of samples, mean differences) are computed here and compared with the page's text.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import spikemax_plugins as smx

SF = pytest.importorskip("snntorch.functional", reason="the snnTorch claims need snnTorch")

PAGE = Path(__file__).resolve().parents[2] / "docs" / "migration.md"


def page_text() -> str:
    return PAGE.read_text(encoding="utf-8")


def assert_page_has_row(*cells: str) -> None:
    """The page has a table row with exactly these cells (spacing around the pipes is ignored)."""
    rows = {tuple(cell.strip() for cell in line.strip().strip("|").split("|")) for line in page_text().splitlines()}
    assert tuple(cells) in rows, f"docs/migration.md has no table row {' | '.join(cells)}"


def percent(share: float) -> str:
    return f"{100 * share:.1f} %"


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
def test_lava_layout_needs_no_permute_with_time_dim(seed):
    """The page's before/after: our loss on lava-dl's own [B, C, T] tensor, time_dim=-1, equals the time-first one."""
    spikes_bct, spikes, target = lava_case(seed)
    loss_fn = smx.SpikeMaxGLoss(reduction="sum", smoothing=0.0, time_dim=-1)
    time_first = smx.spikemax_g(spikes, target, reduction="sum", smoothing=0.0)
    torch.testing.assert_close(loss_fn(spikes_bct, target), time_first)
    lava = lava_spikemax_transcription(spikes_bct, target, mode="probability")
    assert (lava - loss_fn(spikes_bct, target)).abs().item() < 1e-3  # lava-dl's epsilon, see below
    assert smx.accuracy(spikes_bct, target, time_dim=-1).item() == smx.accuracy(spikes, target).item()
    torch.testing.assert_close(
        smx.mse_count(spikes_bct, target, true_rate=0.5, false_rate=0.1, time_dim=-1),
        smx.mse_count(spikes, target, true_rate=0.5, false_rate=0.1),
    )


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


# ---------------------------------------------------------------------------------------------------------------
# lava-dl SpikeMax, probability mode: any silent class poisons the sample's gradient
# ---------------------------------------------------------------------------------------------------------------


def lava_spike_gradient(spikes_bct, label, moving_window=None):
    """d(lava-dl's loss)/d(spikes), through the transcription, for probability mode and reduction 'sum'."""
    leaf = spikes_bct.clone().requires_grad_()
    lava_spikemax_transcription(leaf, label, moving_window).backward()
    return leaf.grad


def test_lava_probability_a_silent_non_target_class_makes_the_whole_sample_nan():
    spikes = torch.ones(10, 2, 4)  # [T, B, C]: every class fires at every step ...
    spikes[:, 0, 3] = 0.0  # ... except class 3 of sample 0, which is not its target
    target = torch.tensor([0, 1])
    spikes_bct = spikes.permute(1, 2, 0)
    lava = lava_spikemax_transcription(spikes_bct, target, reduction="none")
    assert torch.isfinite(lava).all()  # the loss itself is finite: only the target's log enters it
    gradient = lava_spike_gradient(spikes_bct, target)
    assert torch.isnan(gradient[0]).all()  # log's backward is 0 / 0 on the silent class, then the sum spreads it
    assert torch.isfinite(gradient[1]).all()  # the other sample is untouched
    ours = spikes.clone().requires_grad_()
    smx.spikemax_g(ours, target, smoothing=0.0, reduction="sum").backward()
    assert torch.isfinite(ours.grad).all()
    assert ours.grad[0, 0, 3].item() == pytest.approx(1 / 30)  # a silent non-target class: 1 / sum(c)


def silent_in_some_window(spikes_bct, window):
    """Whether some class has a zero count in some window of ``window`` steps ending at t = 0 .. T-1; windows
    ending before step ``window - 1`` are partial (they start before the sample). ``window=None``: the whole
    sample. Computed from the counts alone, independently of the transcription."""
    if window is None:
        return (spikes_bct.sum(-1) == 0).any(-1)
    running = F.pad(spikes_bct.cumsum(-1), (window, 0))  # running[..., t + window] = sum of steps 0 .. t
    counts = running[..., window:] - running[..., :-window]  # window counts ending at t = 0 .. T-1
    return (counts == 0).any(-1).any(-1)


def silent_in_some_full_window(spikes_bct, window):
    counts = spikes_bct.unfold(-1, window, 1).sum(-1)  # full windows only, ending at t = window - 1 .. T-1
    return (counts == 0).any(-1).any(-1)


NAN_SETTING = {"num_samples": 10_000, "num_classes": 10, "num_steps": 25, "seed": 0}
NAN_PROBABILITIES = [0.05, 0.1, 0.2, 0.3, 0.5]


def bernoulli_samples(probability, num_samples, num_classes, num_steps, seed):
    generator = torch.Generator().manual_seed(seed)
    spikes_bct = (torch.rand(num_samples, num_classes, num_steps, generator=generator) < probability).float()
    target = torch.randint(0, num_classes, (num_samples,), generator=generator)
    return spikes_bct, target


@pytest.mark.parametrize("probability", NAN_PROBABILITIES)
def test_share_of_random_samples_with_nan_gradients_in_lava_probability_mode(probability):
    """The table on the page: Bernoulli spikes (each neuron fires with probability p at each step), C = 10,
    T = 25, 10,000 samples; a sample counts when any entry of its spike gradient is NaN. Without a moving window,
    and with moving_window=10 (then also: the share that full windows alone would give)."""
    spikes_bct, target = bernoulli_samples(probability, **NAN_SETTING)
    num_samples, num_classes, num_steps = spikes_bct.shape
    shares = []
    for window in (None, 10):
        nan_samples = torch.isnan(lava_spike_gradient(spikes_bct, target, window)).flatten(1).any(-1)
        # NaN exactly where some class is silent in some window, partial windows included, whatever the target
        assert torch.equal(nan_samples, silent_in_some_window(spikes_bct, window))
        shares.append(nan_samples.float().mean().item())
    global_share, window_share = shares
    # without a moving window the NaN covers the whole sample, and its probability is known in closed form
    gradient = lava_spike_gradient(spikes_bct, target)
    assert torch.equal(torch.isnan(gradient).flatten(1).any(-1), torch.isnan(gradient).flatten(1).all(-1))
    analytic = 1 - (1 - (1 - probability) ** num_steps) ** num_classes
    assert abs(global_share - analytic) < 4 * math.sqrt(analytic * (1 - analytic) / num_samples) + 1e-4
    full_window_share = silent_in_some_full_window(spikes_bct, 10).float().mean().item()
    assert_page_has_row(
        f"{probability:g}", percent(global_share), percent(analytic), percent(window_share), percent(full_window_share)
    )


# ---------------------------------------------------------------------------------------------------------------
# lava-dl SpikeMax, probability mode with a moving window, on full windows
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("window", [1, 3, 8])
def test_lava_moving_window_probability_on_full_windows_is_spikemax_s_without_smoothing(window):
    num_steps = 20
    spikes_bct, spikes, target = lava_case(seed=window, num_steps=num_steps)
    spikes[:] = torch.maximum(spikes, (torch.arange(num_steps) % window == 0).float()[:, None, None])
    spikes_bct = spikes.permute(1, 2, 0)  # every class fires at least once in every window
    per_step = lava_spikemax_transcription(spikes_bct, target, window, reduction="none")
    per_step = per_step.reshape(target.shape[0], num_steps)[:, window - 1 :]  # [B, full windows]
    window_counts = spikes.unfold(0, window, 1).sum(-1)  # [full windows, B, C]
    # per step: lava-dl = ours + log(1 + W * 1e-6 / sum_j c_j(t)), lava-dl's epsilon on rates = counts / W
    gap = torch.log1p(window * LAVA_EPS / window_counts.sum(-1)).T  # [B, full windows]
    for step in range(per_step.shape[1]):
        ours_step = smx.spikemax_g(spikes[step : step + window], target, smoothing=0.0, reduction="none")
        torch.testing.assert_close(per_step[:, step], ours_step + gap[:, step], rtol=1e-6, atol=1e-6)
    ours = smx.spikemax_s(spikes, target, window=window, smoothing=0.0, reduction="none")  # mean over windows
    torch.testing.assert_close(per_step.sum(1), ours * per_step.shape[1] + gap.sum(1), rtol=1e-6, atol=1e-5)
    assert gap.max() < window * LAVA_EPS  # sum_j c_j(t) >= 1


# ---------------------------------------------------------------------------------------------------------------
# lava-dl SpikeRate, transcribed
# ---------------------------------------------------------------------------------------------------------------


def lava_spike_rate_transcription(spikes_bct, label, true_rate, false_rate, reduction="sum"):
    """TRANSCRIPTION (not lava-dl itself) of ``lava.lib.dl.slayer.loss.SpikeRate.forward`` without a moving
    window, lava-dl 0.6.0: ``Rate.rate`` (mean over time), one-hot target rates, ``F.mse_loss`` over the flattened
    ``[batch, class]`` rates."""
    spikes_bct = spikes_bct.reshape(spikes_bct.shape[0], -1, spikes_bct.shape[-1])
    one_hot = F.one_hot(label, num_classes=spikes_bct.shape[1])
    spike_rate = spikes_bct.mean(-1)
    target_rate = true_rate * one_hot + false_rate * (1 - one_hot)
    return F.mse_loss(spike_rate.flatten(), target_rate.flatten(), reduction=reduction)


@pytest.mark.parametrize("seed", range(3))
def test_lava_spike_rate_sum_is_mse_count_sum_times_classes_over_steps_squared(seed):
    spikes, target, _ = random_case(num_steps=20, num_classes=5, seed=seed)
    # 20 * 0.73 = 14.6 and 20 * 0.12 = 2.4 target spikes: the equality shows that neither side truncates them
    lava = lava_spike_rate_transcription(spikes.permute(1, 2, 0), target, 0.73, 0.12)  # reduction 'sum' by default
    ours = smx.mse_count(spikes, target, true_rate=0.73, false_rate=0.12, reduction="sum")
    torch.testing.assert_close(lava, ours * 5 / 20**2)


@pytest.mark.parametrize("seed", range(3))
def test_lava_spike_rate_mean_is_mse_count_over_steps_squared(seed):
    spikes, target, _ = random_case(num_steps=20, num_classes=5, seed=seed)
    lava = lava_spike_rate_transcription(spikes.permute(1, 2, 0), target, 0.73, 0.12, reduction="mean")
    ours = smx.mse_count(spikes, target, true_rate=0.73, false_rate=0.12)
    torch.testing.assert_close(lava, ours / 20**2)


# ---------------------------------------------------------------------------------------------------------------
# The SpikeMax authors' code (sunpengfei1122/Spikemax, file ``loss``), transcribed
# ---------------------------------------------------------------------------------------------------------------


class AuthorsGlobalProbSpikes(torch.autograd.Function):
    """TRANSCRIPTION (not the authors' code itself) of ``globalProbSpikes`` in the SpikeMax authors' file ``loss``
    (repository sunpengfei1122/Spikemax): slayer layout ``[N, C, H, W, T]``, counts floored with ``clamp(1)``,
    loss ``sum(-desired * log p)`` over the batch, and the hand-written backward ``(p - desired) / count`` on every
    time step."""

    @staticmethod
    def forward(ctx, spike_out, desired_prob):
        spike_count = torch.sum(spike_out, 4, keepdim=True).clamp(1)
        total_spike = spike_count.sum(dim=[1, 2, 3], keepdim=True)
        probability = spike_count / total_spike
        ctx.save_for_backward(probability, desired_prob, spike_count)
        ctx.num_steps = spike_out.shape[-1]
        return torch.sum(-desired_prob * torch.log(probability))

    @staticmethod
    def backward(ctx, grad_output):
        probability, desired_prob, spike_count = ctx.saved_tensors
        grad = (probability - desired_prob) / spike_count * torch.ones(*probability.shape[:-1], ctx.num_steps)
        return grad * grad_output, None


class AuthorsRunningProbSpikes(torch.autograd.Function):
    """TRANSCRIPTION (not the authors' code itself) of ``runningProbSpikes`` in the same file: window counts by a
    causal convolution with ``ones(W)`` (slayerCuda.conv, here a zero-padded running sum), floored with
    ``clamp(1)``, probabilities per step, loss summed over steps and samples; the backward returns
    ``(p - desired) / count`` of the window ending at step t as the gradient of the spike at step t."""

    @staticmethod
    def forward(ctx, spike_out, desired_prob, window):
        spike_count = authors_window_counts(spike_out, window).clamp(1)
        total_spike = spike_count.sum(dim=[1, 2, 3], keepdim=True)
        probability = spike_count / total_spike
        ctx.save_for_backward(probability, desired_prob, spike_count)
        return torch.sum(-desired_prob * torch.log(probability))

    @staticmethod
    def backward(ctx, grad_output):
        probability, desired_prob, spike_count = ctx.saved_tensors
        grad = (probability - desired_prob) / spike_count
        return grad * grad_output, None, None


def authors_window_counts(spike_out, window):
    """Causal box sum over the last (time) axis: the count of steps t - window + 1 .. t, zeros before step 0."""
    return F.pad(spike_out, (window - 1, 0)).unfold(-1, window, 1).sum(-1)


def to_slayer(spikes):
    """[T, B, C] -> slayer's [N, C, H=1, W=1, T]."""
    return spikes.permute(1, 2, 0)[:, :, None, None, :].contiguous()


def one_hot_slayer(target, num_classes):
    return F.one_hot(target, num_classes).float()[:, :, None, None, None]


def authors_global(spikes, target):
    """The authors' loss and their gradient, per count ([B, C]; every step of a count gets the same)."""
    leaf = to_slayer(spikes).requires_grad_()
    loss = AuthorsGlobalProbSpikes.apply(leaf, one_hot_slayer(target, spikes.shape[-1]))
    loss.backward()
    return loss, leaf.grad[:, :, 0, 0, 0]


def ours_global(spikes, target, smoothing):
    leaf = spikes.clone().requires_grad_()
    loss = smx.spikemax_g(leaf, target, smoothing=smoothing, reduction="none")
    loss.sum().backward()
    return loss, leaf.grad[0]


def test_authors_loss_is_the_papers_formula_on_counts_floored_at_one_and_so_is_their_gradient():
    spikes, target = bernoulli_samples(0.08, num_samples=64, num_classes=6, num_steps=20, seed=1)
    spikes = spikes.permute(2, 0, 1)  # [T, B, C]
    silent = spikes.sum(0) == 0
    assert silent.any(), "the example needs silent classes"
    floored = spikes.clone()
    floored[0] = torch.where(silent, 1.0, floored[0])  # one spike for each silent class: counts max(1, c)
    theirs_loss, theirs_gradient = authors_global(spikes, target)
    ours_loss, ours_gradient = ours_global(floored, target, smoothing=0.0)
    torch.testing.assert_close(theirs_loss, ours_loss.sum())
    torch.testing.assert_close(theirs_gradient, ours_gradient)  # the gradient at the floored counts ...


def test_authors_gradient_passes_straight_through_the_floor():
    spikes = torch.zeros(10, 1, 3)
    spikes[:, 0, 1] = 1.0
    spikes[:4, 0, 2] = 1.0  # counts (0, 10, 4), target 0: the target is silent
    target = torch.tensor([0])
    _, theirs_gradient = authors_global(spikes, target)
    # ... applied where the floor is flat: the derivative of their own forward there is 0 (autograd through clamp)
    leaf = to_slayer(spikes).requires_grad_()
    counts = leaf.sum(4, keepdim=True).clamp(1)
    torch.sum(-one_hot_slayer(target, 3) * torch.log(counts / counts.sum(1, keepdim=True))).backward()
    assert leaf.grad[0, 0, 0, 0, 0].item() == 0.0
    assert theirs_gradient[0, 0].item() == pytest.approx((1 / 15 - 1) / 1)  # (p - d) / max(1, c)
    # a floor is not a shift: one spike and none score the same for them, not for smoothing=1
    one_spike = spikes.clone()
    one_spike[0, 0, 0] = 1.0
    assert authors_global(one_spike, target)[0].item() == pytest.approx(authors_global(spikes, target)[0].item())
    assert smx.spikemax_g(one_spike, target).item() < smx.spikemax_g(spikes, target).item() - 0.5


AUTHORS_PROBABILITIES = [0.05, 0.1, 0.2, 0.3]


@pytest.mark.parametrize("probability", AUTHORS_PROBABILITIES)
def test_how_close_smoothing_0_and_1_come_to_the_authors_floor(probability):
    """The table on the page: Bernoulli spikes, C = 10, T = 25, 10,000 samples, one-hot targets."""
    spikes_bct, target = bernoulli_samples(probability, **NAN_SETTING)
    spikes = spikes_bct.permute(2, 0, 1)
    theirs_loss, theirs_gradient = authors_global(spikes, target)
    counts = spikes.sum(0)
    theirs_per_sample = -torch.log(counts.clamp(min=1) / counts.clamp(min=1).sum(-1, keepdim=True))
    theirs_per_sample = theirs_per_sample.gather(1, target[:, None]).squeeze(1)
    torch.testing.assert_close(theirs_per_sample.sum(), theirs_loss)
    any_silent = (counts == 0).any(-1)
    cells = [f"{probability:g}", percent(any_silent.float().mean().item())]
    for smoothing in (0.0, 1.0):
        ours_loss, ours_gradient = ours_global(spikes, target, smoothing)
        finite = torch.isfinite(ours_loss) & torch.isfinite(ours_gradient).all(-1)
        loss_difference = (ours_loss - theirs_per_sample).abs()[finite]
        gradient_difference = ((ours_gradient - theirs_gradient).norm(dim=-1) / theirs_gradient.norm(dim=-1))[finite]
        if smoothing == 0.0:
            # identical wherever every class fired: the floor does nothing there
            assert loss_difference[~any_silent[finite]].max() < 1e-5
            assert gradient_difference[~any_silent[finite]].max() < 1e-5
            # +inf exactly where the target is silent, never NaN
            silent_target = counts.gather(1, target[:, None]).squeeze(1) == 0
            assert torch.equal(~finite, silent_target) and not torch.isnan(ours_gradient).any()
            cells.append(percent(silent_target.float().mean().item()))
        else:
            assert finite.all()
        cells += [f"{loss_difference.mean().item():.3f}", f"{gradient_difference.mean().item():.3f}"]
    assert_page_has_row(*cells)


def straight_through_floor(counts):
    """max(1, c) in the forward pass, the identity in the backward pass: the authors' floor, differentiated."""
    return counts + (counts.clamp(1) - counts).detach()


@pytest.mark.parametrize("window", [1, 2, 5])
def test_authors_sliding_window_gradient_omits_the_window_sum(window):
    spikes, target = bernoulli_samples(0.5, num_samples=8, num_classes=4, num_steps=12, seed=window)
    spikes = spikes.permute(2, 0, 1)
    desired = one_hot_slayer(target, 4)
    theirs = to_slayer(spikes).requires_grad_()
    theirs_loss = AuthorsRunningProbSpikes.apply(theirs, desired, window)
    theirs_loss.backward()
    # the gradient of the loss they compute, with their own straight-through floor, by autograd
    true = to_slayer(spikes).requires_grad_()
    counts = straight_through_floor(authors_window_counts(true, window))
    true_loss = torch.sum(-desired * torch.log(counts / counts.sum(dim=[1, 2, 3], keepdim=True)))
    true_loss.backward()
    torch.testing.assert_close(true_loss, theirs_loss)
    # the true gradient of spike k sums their per-window values over the windows that contain it: t = k .. k+W-1
    per_window = theirs.grad
    window_sum = F.pad(per_window, (0, window - 1)).unfold(-1, window, 1).sum(-1)
    torch.testing.assert_close(true.grad, window_sum)
    if window == 1:
        torch.testing.assert_close(theirs.grad, true.grad)
    else:
        assert (theirs.grad - true.grad).abs().max() > 0.1


def test_spikemax_s_gradient_is_the_window_sum_their_backward_omits():
    window, num_steps = 5, 12
    spikes, target = bernoulli_samples(0.6, num_samples=8, num_classes=4, num_steps=num_steps, seed=0)
    spikes = spikes.permute(2, 0, 1).contiguous()
    spikes[::2] = 1.0  # every window of two or more steps holds a spike of every class: no floor, no silent class
    leaf = to_slayer(spikes).requires_grad_()
    counts = authors_window_counts(leaf, window)[..., window - 1 :]  # the full windows, as spikemax_s scores them
    loss = torch.sum(-one_hot_slayer(target, 4) * torch.log(counts / counts.sum(dim=[1, 2, 3], keepdim=True)))
    loss.backward()
    ours = spikes.clone().requires_grad_()
    ours_loss = smx.spikemax_s(ours, target, window=window, smoothing=0.0, reduction="sum") * (num_steps - window + 1)
    ours_loss.backward()
    torch.testing.assert_close(ours_loss, loss)
    torch.testing.assert_close(ours.grad, leaf.grad[:, :, 0, 0, :].permute(2, 0, 1))


# ---------------------------------------------------------------------------------------------------------------
# snnTorch mse_count_loss with a weight: batch sizes and the 'sum' reduction
# ---------------------------------------------------------------------------------------------------------------


def test_mse_count_loss_weight_works_for_a_batch_of_one():
    spikes, target, weight = random_case(batch_size=1, num_classes=5, num_steps=20)
    theirs = SF.mse_count_loss(correct_rate=0.75, incorrect_rate=0.25, weight=weight)(spikes, target)
    ours = smx.mse_count(spikes, target, true_rate=0.75, false_rate=0.25, weight=weight, reduction="sum")
    torch.testing.assert_close(theirs, ours / 20, **TIGHT)  # the one sample scaled by weight[y]


@pytest.mark.parametrize("batch_size", [2, 3, 4, 6, 7])
def test_mse_count_loss_weight_fails_for_every_other_batch_size_but_the_class_count(batch_size):
    spikes, target, weight = random_case(batch_size=batch_size, num_classes=5)
    with pytest.raises(RuntimeError, match="must match the size"):
        SF.mse_count_loss(correct_rate=0.75, incorrect_rate=0.25, weight=weight)(spikes, target)


@pytest.mark.parametrize("batch_size", [1, 5])
def test_mse_count_loss_weight_with_sum_returns_the_unreduced_errors_over_num_steps(batch_size):
    spikes, target, weight = random_case(batch_size=batch_size, num_classes=5, num_steps=20)
    theirs = SF.mse_count_loss(correct_rate=0.75, incorrect_rate=0.25, weight=weight, reduction="sum")(spikes, target)
    assert theirs.shape == (batch_size, 5)
    target_counts = torch.where(F.one_hot(target, 5).bool(), 15.0, 5.0)
    squared_errors = (spikes.sum(0) - target_counts) ** 2  # [B, C]
    torch.testing.assert_close(theirs, squared_errors * weight[target] / 20, **TIGHT)
