"""The nn.Module twins equal their functions and keep the class weight as a buffer."""

import pytest
import torch

import spikemax_plugins as smx

CASES = [
    (smx.SpikeMaxGLoss, smx.spikemax_g, dict(mode="softmax", temperature=0.5, label_smoothing=0.1)),
    (smx.SpikeMaxGLoss, smx.spikemax_g, dict(smoothing=0.2, num_classes=3, reduction="none")),
    (smx.SpikeMaxSLoss, smx.spikemax_s, dict(window=4, stride=2, temperature=2.0, reduction="sum")),
    (smx.MSECountLoss, smx.mse_count, dict(true_rate=0.8, false_rate=0.1, num_classes=3)),
]


@pytest.mark.parametrize("module_class, function, options", CASES)
def test_module_equals_function(module_class, function, options):
    generator = torch.Generator().manual_seed(4)
    spikes = (torch.rand(10, 5, 6, generator=generator) < 0.3).float()
    classes = options.get("num_classes") or 6
    target = torch.randint(0, classes, (5,), generator=generator)
    weight = torch.rand(classes, generator=generator) + 0.5
    module = module_class(weight=weight, **options)
    assert torch.equal(module(spikes, target), function(spikes, target, weight=weight, **options))


def test_weight_is_a_buffer_and_options_show_in_repr():
    module = smx.SpikeMaxSLoss(window=3, weight=torch.ones(4))
    assert "weight" in dict(module.named_buffers())
    assert "weight" in module.state_dict()
    assert "window=3" in repr(module)
    module = module.double()
    assert module.weight.dtype == torch.float64


def test_module_options_are_keyword_only():
    with pytest.raises(TypeError):
        smx.SpikeMaxGLoss("softmax")  # type: ignore[misc]
