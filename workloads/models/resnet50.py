"""ResNet-50 from torchvision with random weights: 25,557,032 parameters, input float [B,3,224,224]."""
from __future__ import annotations

import torch
import torchvision

IMAGE_SIDE = 224


def build(config) -> torch.nn.Module:
    return torchvision.models.resnet50(weights=None)  # weights=None: never download


def example_inputs(batch: int, config) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(2)
    return (torch.randn(batch, 3, IMAGE_SIDE, IMAGE_SIDE, generator=generator),)
