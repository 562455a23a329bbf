"""The small networks trained on the simulator's renders (``train_sim_*.py``): one U-Net family.

Why one family: depth, box-prompted segmentation and detection are all dense predictions on a
small image; an encoder-decoder with skip connections (U-Net) is the simplest architecture that
does all three, exports to plain ONNX (Conv, Relu, Resize, Concat) and runs in milliseconds on a
CPU. Sizes are chosen for this project's budget: <= 30 ms per 640x480 frame on a 2-core CPU at
inference, <= 20 minutes of training each.

- ``DepthNet``: RGB -> relative depth (one channel, larger = farther, unknown scale and shift).
- ``BoxSegNet``: a crop around the box: RGB + D0 (normalised in the crop) + the box as a mask
  channel -> mask logits.
- ``DetNet``: RGB -> per-class centre heatmap logits + box size (log, in input pixels) + centre
  offset, at a quarter of the input resolution (CenterNet-style).

Imports torch: export side only (the runtime runs the ONNX files).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """Two 3x3 convolutions with batch norm (folded into the convs at export) and ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class UNet(nn.Module):
    """Encoder: level i has ``widths[i]`` channels at 1/2^(i+1) of the input resolution. Decoder:
    upsample + skip connection + block, from the deepest level back to level ``out_level - 1``,
    i.e. the output has 1/2^out_level of the input resolution (``out_level`` >= 1)."""

    def __init__(self, cin: int, cout: int, widths: Sequence[int] = (16, 32, 48, 64, 96), out_level: int = 1) -> None:
        super().__init__()
        w = list(widths)
        if not 1 <= out_level <= len(w):
            raise ValueError(f"out_level must be in 1..{len(w)}")
        self.enc = nn.ModuleList([_block(cin, w[0], 2)] + [_block(w[i - 1], w[i], 2) for i in range(1, len(w))])
        j = out_level - 1
        self.dec = nn.ModuleList([_block(w[i] + w[i - 1], w[i - 1]) for i in range(len(w) - 1, j, -1)])
        self.head = nn.Conv2d(w[j], cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = []
        for e in self.enc:
            x = e(x)
            feats.append(x)
        y = feats[-1]
        for k, d in enumerate(self.dec):
            skip = feats[len(feats) - 2 - k]
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = d(torch.cat([y, skip], 1))
        return self.head(y)


class DepthNet(nn.Module):
    """RGB [B,3,H,W] (ImageNet-normalised) -> relative depth [B,H,W] (bilinear up from H/2)."""

    def __init__(self, widths: Sequence[int] = (16, 32, 48, 64, 96)) -> None:
        super().__init__()
        self.net = UNet(3, 1, widths, out_level=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x)
        y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return y[:, 0]


class BoxSegNet(nn.Module):
    """[B,5,S,S] (RGB normalised, D0 normalised in the crop, box channel) -> mask logits [B,S,S]."""

    def __init__(self, widths: Sequence[int] = (16, 32, 48, 64)) -> None:
        super().__init__()
        self.net = UNet(5, 1, widths, out_level=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x)
        y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return y[:, 0]


class DetNet(nn.Module):
    """RGB [B,3,H,W] -> heatmap logits [B,C,H/4,W/4], box size log(w,h px) [B,2,H/4,W/4],
    centre offset within the cell [B,2,H/4,W/4] (cells)."""

    def __init__(self, num_classes: int, widths: Sequence[int] = (16, 32, 48, 64, 96)) -> None:
        super().__init__()
        self.num_classes = int(num_classes)
        self.net = UNet(3, self.num_classes + 4, widths, out_level=2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        y = self.net(x)
        c = self.num_classes
        return y[:, :c], y[:, c:c + 2], y[:, c + 2:c + 4]


def count_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


__all__ = ["UNet", "DepthNet", "BoxSegNet", "DetNet", "count_params"]
