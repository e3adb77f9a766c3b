"""CRAFT text detector (Baek et al., CVPR 2019), built here from its published architecture.

VGG16-BN backbone to conv5 plus an fc6/fc7 slice, a U-net decoder and a small head: 20,770,466
parameters; input float [B,3,S,S] with S a multiple of 32 (800 in AWS's Neuron sample); output
[B,S/2,S/2,2] = region and affinity scores. Module names follow the original implementation, so
its published checkpoints load with --weights (a "module." prefix is stripped by load_weights).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from . import get_model

DEFAULT_IMAGE_SIZE = 800
# Where the original splits torchvision's vgg16_bn().features: outputs at 1/2, 1/4, 1/8, 1/16 scale.
VGG_SLICES = ((0, 12), (12, 19), (19, 29), (29, 39))


class VGG16BNBase(nn.Module):
    def __init__(self):
        super().__init__()
        features = torchvision.models.vgg16_bn(weights=None).features  # weights=None: never download
        for index, (start, stop) in enumerate(VGG_SLICES, start=1):
            part = nn.Sequential()
            for i in range(start, stop):  # keep torchvision's indices as names, as the original does
                part.add_module(str(i), features[i])
            setattr(self, f"slice{index}", part)
        self.slice5 = nn.Sequential(  # fc6/fc7 as convolutions, fc6 dilated
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1),
            nn.Conv2d(512, 1024, kernel_size=3, padding=6, dilation=6),
            nn.Conv2d(1024, 1024, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(fc7, conv5_3, conv4_3, conv3_2, conv2_2): deepest first, as the decoder consumes them."""
        h2 = self.slice1(x)
        h3 = self.slice2(h2)
        h4 = self.slice3(h3)
        h5 = self.slice4(h4)
        return self.slice5(h5), h5, h4, h3, h2


class DoubleConv(nn.Module):
    """1x1 conv over the concatenated skip (in+mid channels) to mid, then 3x3 to out; BN + ReLU each."""

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_ch + mid_ch, mid_ch, kernel_size=1),
            nn.BatchNorm2d(mid_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid_ch, out_ch, kernel_size=3, padding=1),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class CRAFT(nn.Module):
    def __init__(self):
        super().__init__()
        self.basenet = VGG16BNBase()
        self.upconv1 = DoubleConv(1024, 512, 256)
        self.upconv2 = DoubleConv(512, 256, 128)
        self.upconv3 = DoubleConv(256, 128, 64)
        self.upconv4 = DoubleConv(128, 64, 32)
        self.conv_cls = nn.Sequential(
            nn.Conv2d(32, 32, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(32, 32, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(32, 16, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(16, 16, kernel_size=1), nn.ReLU(inplace=True),
            nn.Conv2d(16, 2, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fc7, *skips = self.basenet(x)
        y = self.upconv1(torch.cat([fc7, skips[0]], dim=1))
        for upconv, skip in zip((self.upconv2, self.upconv3, self.upconv4), skips[1:]):
            y = F.interpolate(y, size=skip.shape[2:], mode="bilinear", align_corners=False)
            y = upconv(torch.cat([y, skip], dim=1))
        return self.conv_cls(y).permute(0, 2, 3, 1)


def image_size_of(config) -> int:
    problems = get_model("craft").size_problems(config)  # the rule the parent checks too
    if problems:
        raise ValueError(problems[0])
    return config.image_size or DEFAULT_IMAGE_SIZE


def build(config) -> nn.Module:
    image_size_of(config)  # an unusable size is refused before the build
    return CRAFT()


def example_inputs(batch: int, config) -> tuple[torch.Tensor, ...]:
    size = image_size_of(config)
    generator = torch.Generator().manual_seed(4)
    return (torch.randn(batch, 3, size, size, generator=generator),)
