"""Both adapters installed together: each host's registered names point at its own adapter. Needs snnTorch and
Norse at once (the README's test command; tox's per-host environments skip it)."""

import pytest


def test_snntorch_and_norse_registration_points_at_the_adapters():
    sf = pytest.importorskip("snntorch.functional", reason="needs snnTorch")
    norse_torch = pytest.importorskip("norse.torch", reason="needs Norse")
    import spikemax_norse
    import spikemax_snntorch

    assert sf.spikemax_g_loss is spikemax_snntorch.spikemax_g_loss
    assert sf.spikemax_s_loss is spikemax_snntorch.spikemax_s_loss
    assert norse_torch.SpikeMaxGLoss is spikemax_norse.SpikeMaxGLoss
    assert norse_torch.functional.spikemax_s is spikemax_norse.spikemax_s
