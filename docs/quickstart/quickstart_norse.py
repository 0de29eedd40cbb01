import norse.torch as norse
import spikemax_norse  # noqa: F401  (registers norse.SpikeMaxGLoss, norse.SpikeMaxSLoss, norse.MSECountLoss)
import torch
from torch import nn

model = norse.SequentialState(nn.Linear(20, 32), norse.LIF(), nn.Linear(32, 10), norse.LIF())
inputs = (torch.rand(100, 32, 20) < 0.2).float()  # [T, B, inputs]
targets = torch.randint(0, 10, (32,))

loss_fn = norse.SpikeMaxGLoss()  # sliding window: norse.SpikeMaxSLoss(window=10)
loss = loss_fn(model(inputs), targets)  # takes the model's (spikes, state) output as it is
loss.backward()
print(f"loss {loss.item():.3f}")
