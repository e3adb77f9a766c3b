"""The small MNIST CNN of the seed study: 3,165,826 parameters, input float [B,1,28,28]."""
from __future__ import annotations

import torch
from torch import nn

IMAGE_SIDE = 28


class MnistCNN(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1, 1)
        self.pool = nn.MaxPool2d(2)
        self.dropout = nn.Dropout2d(0.25)
        self.fc1 = nn.Linear(64 * 7 * 7, 1000)
        self.fc2 = nn.Linear(1000, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = torch.flatten(self.dropout(x), 1)
        return self.fc2(torch.relu(self.fc1(x)))


def build(config) -> nn.Module:
    return MnistCNN()


def example_inputs(batch: int, config) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(1)
    return (torch.rand(batch, 1, IMAGE_SIDE, IMAGE_SIDE, generator=generator),)
