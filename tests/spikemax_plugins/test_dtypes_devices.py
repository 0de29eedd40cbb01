"""Half and double precision, torch.compile, and the same checks on CUDA when a GPU is present."""

import pytest
import torch

import spikemax_plugins as smx
from spikemax_plugins import reference

LOSSES = {
    "spikemax_g": lambda spikes, target, **kw: smx.spikemax_g(spikes, target, **kw),
    "spikemax_s": lambda spikes, target, **kw: smx.spikemax_s(spikes, target, window=7, stride=3, **kw),
    "mse_count": lambda spikes, target, **kw: smx.mse_count(spikes, target, true_rate=0.6, false_rate=0.05, **kw),
}
REFERENCES = {
    "spikemax_g": lambda spikes, target: reference.spikemax_g(spikes, target),
    "spikemax_s": lambda spikes, target: reference.spikemax_s(spikes, target, window=7, stride=3),
    "mse_count": lambda spikes, target: reference.mse_count(spikes, target, true_rate=0.6, false_rate=0.05),
}


def _problem(device="cpu", num_steps=40):
    generator = torch.Generator().manual_seed(2)
    spikes = (torch.rand(num_steps, 8, 10, generator=generator) < 0.3).float()
    target = torch.randint(0, 10, (8,), generator=generator)
    return spikes.to(device), target.to(device)


@pytest.mark.parametrize("loss_name", sorted(LOSSES))
@pytest.mark.parametrize(
    "dtype, expected_loss_dtype",
    [
        (torch.float16, torch.float32),
        (torch.bfloat16, torch.float32),
        (torch.float32, torch.float32),
        (torch.float64, torch.float64),
    ],
)
def test_dtypes(loss_name, dtype, expected_loss_dtype):
    spikes, target = _problem()
    spikes = spikes.to(dtype).requires_grad_()
    loss = LOSSES[loss_name](spikes, target)
    loss.backward()
    assert loss.dtype == expected_loss_dtype
    assert spikes.grad.dtype == dtype and torch.isfinite(spikes.grad.float()).all()
    # Binary spikes are exact in every dtype and counts accumulate in float32+, so the loss is exact too.
    expected = REFERENCES[loss_name](spikes.detach().double().numpy(), target.numpy())
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_half_precision_counts_do_not_saturate():
    # float16 cannot represent 2049; counts must accumulate in float32.
    spikes = torch.ones(2049, 1, 2, dtype=torch.float16)
    assert smx.spike_counts(spikes).tolist() == [[2049.0, 2049.0]]


@pytest.mark.slow
@pytest.mark.parametrize("loss_name", ["spikemax_g", "spikemax_s"])
def test_torch_compile(loss_name):
    spikes, target = _problem()
    compiled = torch.compile(LOSSES[loss_name], fullgraph=False)
    eager_spikes = spikes.clone().requires_grad_()
    compiled_spikes = spikes.clone().requires_grad_()
    eager = LOSSES[loss_name](eager_spikes, target)
    result = compiled(compiled_spikes, target)
    eager.backward()
    result.backward()
    torch.testing.assert_close(result, eager)
    torch.testing.assert_close(compiled_spikes.grad, eager_spikes.grad)


@pytest.mark.cuda
@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_cuda_matches_cpu(loss_name):
    spikes, target = _problem()
    cpu_spikes = spikes.clone().requires_grad_()
    cuda_spikes = spikes.cuda().requires_grad_()
    weight = torch.linspace(0.5, 1.5, 10)
    options = {} if loss_name == "mse_count" else {"label_smoothing": 0.1}
    cpu_loss = LOSSES[loss_name](cpu_spikes, target, weight=weight, **options)
    cuda_loss = LOSSES[loss_name](cuda_spikes, target.cuda(), weight=weight.cuda(), **options)
    cpu_loss.backward()
    cuda_loss.backward()
    assert cuda_loss.device.type == "cuda"
    torch.testing.assert_close(cuda_loss.cpu(), cpu_loss)
    torch.testing.assert_close(cuda_spikes.grad.cpu(), cpu_spikes.grad)


@pytest.mark.cuda
def test_cuda_metrics_and_errors():
    spikes, target = _problem()
    cuda_spikes, cuda_target = spikes.cuda(), target.cuda()
    assert torch.equal(smx.predict(cuda_spikes).cpu(), smx.predict(spikes))
    assert torch.equal(smx.time_to_decision(cuda_spikes).cpu(), smx.time_to_decision(spikes))
    torch.testing.assert_close(
        smx.accuracy_over_time(cuda_spikes, cuda_target).cpu(), smx.accuracy_over_time(spikes, target)
    )
    with pytest.raises(ValueError, match="target is on cpu but spikes is on cuda"):
        smx.spikemax_g(cuda_spikes, target)
    with pytest.raises(ValueError, match="spikes must be >= 0"):
        smx.spikemax_g(cuda_spikes - 1, cuda_target)
    module = smx.SpikeMaxGLoss(weight=torch.ones(10)).cuda()
    assert module.weight.device.type == "cuda"
    assert torch.isfinite(module(cuda_spikes, cuda_target))
