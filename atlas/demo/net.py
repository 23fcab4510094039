"""The demo's classifier: a small CNN whose layers have readable names.

``block1`` .. ``block4`` are conv-batchnorm-ReLU stages (at 64 px input: 64, 32, 16 and 8 px
square), the first three each followed by a 2x2 max-pool; then global average
pooling and the linear head ``fc``. Any layer can be named in a config: ``block3``,
``block4.conv``, ``fc``.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            bn=nn.BatchNorm2d(out_channels),
            relu=nn.ReLU(inplace=False),
        )
    )


class DemoCNN(nn.Module):
    def __init__(self, num_classes: int = 10, widths: tuple[int, ...] = (16, 32, 64, 128)) -> None:
        super().__init__()
        w1, w2, w3, w4 = widths
        self.block1 = conv_block(3, w1)
        self.pool1 = nn.MaxPool2d(2)
        self.block2 = conv_block(w1, w2)
        self.pool2 = nn.MaxPool2d(2)
        self.block3 = conv_block(w2, w3)
        self.pool3 = nn.MaxPool2d(2)
        self.block4 = conv_block(w3, w4)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(w4, num_classes)

    def forward(self, x):
        for module in self.children():
            x = module(x)
        return x
