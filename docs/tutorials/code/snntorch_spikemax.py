"""Tutorial 1: train a small snnTorch network with SpikeMax (``SF.spikemax_g_loss``).

Run it with ``python docs/tutorials/code/snntorch_spikemax.py`` (a few seconds on a CPU).
"""

import snntorch as snn
import snntorch.functional as SF
import snntorch.utils
import spikemax_snntorch  # noqa: F401  (the import adds SF.spikemax_g_loss and friends to snntorch.functional)
import torch
from synthetic_data import NUM_CLASSES, NUM_INPUTS, make_spike_data
from torch import nn


def build_network() -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(NUM_INPUTS, 32),
        snn.Leaky(beta=0.9, init_hidden=True),
        nn.Linear(32, NUM_CLASSES),
        snn.Leaky(beta=0.9, init_hidden=True, output=True),
    )


def output_spikes(net: nn.Sequential, inputs: torch.Tensor) -> torch.Tensor:
    """Runs the network over time: inputs [T, B, NUM_INPUTS] -> output spikes [T, B, NUM_CLASSES]."""
    snntorch.utils.reset(net)
    return torch.stack([net(step)[0] for step in inputs])  # net(step) is (spikes, membrane) of the last layer


def main(epochs: int = 6, batch_size: int = 32, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    train_inputs, train_targets = make_spike_data(128, generator)
    test_inputs, test_targets = make_spike_data(256, generator)

    net = build_network()
    loss_fn = SF.spikemax_g_loss()  # spike-count probability, smoothing 1; built and called like SF.ce_count_loss
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-2)

    for epoch in range(epochs):
        for start in range(0, train_targets.shape[0], batch_size):
            batch = slice(start, start + batch_size)
            spk_out = output_spikes(net, train_inputs[:, batch])
            loss = loss_fn(spk_out, train_targets[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        print(f"epoch {epoch}: training loss {loss.item():.3f}")

    with torch.no_grad():
        spk_out = output_spikes(net, test_inputs)
    test_accuracy = float(SF.accuracy_rate(spk_out, test_targets))  # snnTorch's own metrics work unchanged
    print(f"test accuracy {test_accuracy:.3f} (chance {1 / NUM_CLASSES:.2f})")
    return {"final_loss": loss.item(), "test_accuracy": test_accuracy, "chance": 1 / NUM_CLASSES}


if __name__ == "__main__":
    main()
