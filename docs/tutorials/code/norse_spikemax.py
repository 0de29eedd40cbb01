"""Tutorial 2: train a small Norse network with SpikeMax (``norse.torch.SpikeMaxGLoss``).

Run it with ``python docs/tutorials/code/norse_spikemax.py`` (a few seconds on a CPU).
"""

import norse.torch as norse
import spikemax_norse  # noqa: F401  (the import adds SpikeMaxGLoss, SpikeMaxSLoss, MSECountLoss to norse.torch)
import torch
from synthetic_data import NUM_CLASSES, NUM_INPUTS, make_spike_data
from torch import nn

import spikemax_plugins as smx


def main(epochs: int = 6, batch_size: int = 32, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    train_inputs, train_targets = make_spike_data(128, generator)
    test_inputs, test_targets = make_spike_data(256, generator)

    # SequentialState loops over the leading time dimension and returns (spikes [T, B, NUM_CLASSES], states).
    model = norse.SequentialState(
        nn.Linear(NUM_INPUTS, 32),
        norse.LIF(),
        nn.Linear(32, NUM_CLASSES),
        norse.LIF(),
    )
    loss_fn = norse.SpikeMaxGLoss()  # takes the (spikes, states) tuple as it is, or the spikes alone
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-2)

    for epoch in range(epochs):
        for start in range(0, train_targets.shape[0], batch_size):
            batch = slice(start, start + batch_size)
            loss = loss_fn(model(train_inputs[:, batch]), train_targets[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        print(f"epoch {epoch}: training loss {loss.item():.3f}")

    with torch.no_grad():
        test_spikes, _ = model(test_inputs)
    test_accuracy = smx.accuracy(test_spikes, test_targets).item()  # a tie for the most spikes counts as wrong
    spikes_per_sample = smx.spike_counts(test_spikes).sum(-1).mean().item()
    print(f"test accuracy {test_accuracy:.3f} (chance {1 / NUM_CLASSES:.2f}), {spikes_per_sample:.1f} output spikes")
    return {
        "final_loss": loss.item(),
        "test_accuracy": test_accuracy,
        "output_spikes_per_sample": spikes_per_sample,
        "chance": 1 / NUM_CLASSES,
    }


if __name__ == "__main__":
    main()
