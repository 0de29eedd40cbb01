"""After: the same program trained with SpikeMax; four edits, each marked ``# SpikeMax (n)``.

(1) A spiking readout (``LIFCell``) instead of the leaky integrator, (2) an identity decoder: the output spikes go
to the loss as they are, (3) the loss: ``norse.torch.SpikeMaxGLoss`` (added by ``import spikemax_norse``),
(4) the prediction: the class with the most spikes (``spikemax_plugins.predict``; a tie is no decision, -1).
Run it with ``python docs/tutorials/code/norse_spike_readout.py`` (a few seconds on a CPU).
"""

import norse.torch  # SpikeMax (3)
import numpy as np
import spikemax_norse  # noqa: F401  SpikeMax (3): adds SpikeMaxGLoss, spikemax_g, ... to norse.torch
import torch
from norse.torch import ConstantCurrentLIFEncoder, LIFCell, SequentialState  # SpikeMax (1)
from norse.torch.module.lif import LIFRecurrentCell
from norse_readout_data import NUM_CLASSES, NUM_FEATURES, make_dataset

import spikemax_plugins  # SpikeMax (4)

T = 32
LR = 0.01
INPUT_FEATURES = NUM_FEATURES
HIDDEN_FEATURES = 50
OUTPUT_FEATURES = NUM_CLASSES
BATCH_SIZE = 32
EPOCHS = 8


class SNN(torch.nn.Module):
    def __init__(self, input_features, hidden_features, output_features, dt=0.001):
        super().__init__()
        self.net = SequentialState(
            LIFRecurrentCell(input_features, hidden_features, dt=dt),
            torch.nn.Linear(hidden_features, output_features, bias=False),
            LIFCell(dt=dt),  # SpikeMax (1): output spikes, not voltages
        )

    def forward(self, x):
        so = None
        spikes = []
        for timestep in x:
            z = timestep.flatten(1)
            zo, so = self.net(z, so)
            spikes += [zo]
        return torch.stack(spikes)  # [T, B, OUTPUT_FEATURES]


def decode(x):
    return x  # SpikeMax (2): the loss reads the spike counts itself


class Model(torch.nn.Module):
    def __init__(self, encoder, snn, decoder):
        super().__init__()
        self.encoder = encoder
        self.snn = snn
        self.decoder = decoder

    def forward(self, x):
        x = self.encoder(x)
        x = self.snn(x)
        spikes = self.decoder(x)
        return spikes


loss_fn = norse.torch.SpikeMaxGLoss()  # SpikeMax (3): the spike-count cross-entropy (smoothing 1)


def train(model, device, train_loader, optimizer):
    model.train()
    losses = []
    for data, target in train_loader:
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = loss_fn(output, target)  # SpikeMax (3)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    mean_loss = np.mean(losses)
    return losses, mean_loss


def test(model, device, test_loader):
    model.eval()
    test_loss = 0
    correct = 0
    with torch.no_grad():
        for data, target in test_loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            test_loss += norse.torch.functional.spikemax_g(output, target, reduction="sum").item()  # SpikeMax (3)
            pred = spikemax_plugins.predict(output)  # SpikeMax (4): the most spikes; a tie is -1, never right
            correct += pred.eq(target).sum().item()  # SpikeMax (4)
    test_loss /= len(test_loader.dataset)
    accuracy = 100.0 * correct / len(test_loader.dataset)
    return test_loss, accuracy


def main(seed: int = 0) -> dict:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    train_loader = torch.utils.data.DataLoader(make_dataset(256, generator), batch_size=BATCH_SIZE, shuffle=True)
    test_loader = torch.utils.data.DataLoader(make_dataset(256, generator), batch_size=BATCH_SIZE)
    device = torch.device("cpu")

    model = Model(
        encoder=ConstantCurrentLIFEncoder(seq_length=T),
        snn=SNN(INPUT_FEATURES, HIDDEN_FEATURES, OUTPUT_FEATURES),
        decoder=decode,
    ).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)

    mean_losses, accuracies = [], []
    for epoch in range(EPOCHS):
        _, mean_loss = train(model, device, train_loader, optimizer)
        test_loss, accuracy = test(model, device, test_loader)
        mean_losses.append(mean_loss)
        accuracies.append(accuracy)
        print(f"epoch {epoch}: training loss {mean_loss:.3f}, test loss {test_loss:.3f}, accuracy {accuracy:.1f} %")
    return {"mean_losses": mean_losses, "accuracies": accuracies, "chance": 100.0 / NUM_CLASSES}


if __name__ == "__main__":
    main()
