"""Before: Norse's own classifier recipe (the ``mnist_classifiers`` notebook), on a small synthetic task.

A leaky-integrator readout (``LICell``) integrates the last layer's input into voltages; the decoder takes the
maximum voltage over time and a log-softmax; ``nll_loss`` trains it; the prediction is the largest log-probability.
Run it with ``python docs/tutorials/code/norse_voltage_readout.py`` (a few seconds on a CPU).
"""

import numpy as np
import torch
from norse.torch import ConstantCurrentLIFEncoder, LICell, SequentialState
from norse.torch.module.lif import LIFRecurrentCell
from norse_readout_data import NUM_CLASSES, NUM_FEATURES, make_dataset

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
            LICell(dt=dt),
        )

    def forward(self, x):
        so = None
        voltages = []
        for timestep in x:
            z = timestep.flatten(1)
            vo, so = self.net(z, so)
            voltages += [vo]
        return torch.stack(voltages)  # [T, B, OUTPUT_FEATURES]


def decode(x):
    x, _ = torch.max(x, 0)
    log_p_y = torch.nn.functional.log_softmax(x, dim=1)
    return log_p_y


class Model(torch.nn.Module):
    def __init__(self, encoder, snn, decoder):
        super().__init__()
        self.encoder = encoder
        self.snn = snn
        self.decoder = decoder

    def forward(self, x):
        x = self.encoder(x)
        x = self.snn(x)
        log_p_y = self.decoder(x)
        return log_p_y


def train(model, device, train_loader, optimizer):
    model.train()
    losses = []
    for data, target in train_loader:
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = torch.nn.functional.nll_loss(output, target)
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
            test_loss += torch.nn.functional.nll_loss(output, target, reduction="sum").item()
            pred = output.argmax(dim=1, keepdim=True)  # the largest log-probability
            correct += pred.eq(target.view_as(pred)).sum().item()
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
