"""ResNet-38, the wide residual network "model A1" of Wu, Shen & van den Hengel (2019).

It is the backbone of PSA (Ahn & Kwak, 2018), and of RRM and SSDD which build on PSA's code. All its
blocks are pre-activation residual blocks: BN-ReLU comes first, and the shortcut of a block that
changes shape is a 1x1 conv applied to that pre-activation, not to the raw input.

    stem   conv1a  3x3, 64 channels, stride 1 (no BN: the next block's pre-activation normalises)
    b2     3 x block 3x3-3x3,   128 -> 128           stride 2     (H/2)
    b3     3 x block 3x3-3x3,   256 -> 256           stride 2     (H/4)
    b4     6 x block 3x3-3x3,   512 -> 512           stride 2     (H/8)
    b5     3 x block 3x3-3x3,   512 -> 1024          dilation 2   (H/8)
    b6     1 x bottleneck 1x1-3x3-1x1, 512-1024-2048  dilation 4, dropout 0.3
    b7     1 x bottleneck 1x1-3x3-1x1, 1024-2048-4096 dilation 4, dropout 0.5
    bn7    BN-ReLU on the 4096 channels

Choices that follow the PSA public code (``network/resnet38d.py``):
- output stride 8 by default there: b5 keeps stride 1 with dilation 2, except the first 3x3 conv of
  its first block (dilation 1), and b6/b7 use dilation 4 throughout;
- the returned levels are PSA's ``conv3..conv6``: the pre-activations (BN-ReLU) at the inputs of b4,
  b5 and b6, and bn7's output, i.e. channels [256, 512, 1024, 4096];
- dropout 0.3 / 0.5 in the bottlenecks, before their second and third convolutions;
- biases off in every convolution; the bottleneck's stride (used here only for output stride 32)
  sits in its first 1x1 conv.
Not copied from PSA: freezing conv1a and keeping BN in eval mode (PSA's ``not_training`` /
``FixedBatchNorm``) are training policy, left to the training code. The module names here are ours;
``wsss.models.pretrained`` renames PSA's (``b4_5.conv_branch2a`` -> ``b4.5.conv1``) when loading its
converted ImageNet weights.

Output stride 16 or 32 (not used by the papers) moves the stride into b5 (and b6 for 32) and halves
the later dilations, so every level keeps the ResNet strides [4, 8, s3, s4].
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def _conv3x3(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


class PreActBlock(nn.Module):
    """Two 3x3 convolutions, pre-activation: out = conv2(relu(bn2(conv1(a)))) + shortcut, a = relu(bn1(x)).

    ``first_dilation`` is the dilation of conv1 (default: ``dilation``). (B, cin, H, W) -> (B, cout, H/s, W/s).
    """

    def __init__(self, cin: int, cmid: int, cout: int, stride: int = 1, dilation: int = 1,
                 first_dilation: int | None = None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = _conv3x3(cin, cmid, stride, first_dilation or dilation)
        self.bn2 = nn.BatchNorm2d(cmid)
        self.conv2 = _conv3x3(cmid, cout, 1, dilation)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False) if (cin != cout or stride != 1) else None

    def forward(self, x: torch.Tensor, return_preact: bool = False):
        a = F.relu(self.bn1(x))                               # pre-activation, shared by both branches
        shortcut = x if self.shortcut is None else self.shortcut(a)
        out = self.conv2(F.relu(self.bn2(self.conv1(a)))) + shortcut
        return (out, a) if return_preact else out


class PreActBottleneck(nn.Module):
    """1x1 (cout/4) -> 3x3 dilated (cout/2) -> 1x1 (cout), pre-activation, dropout before conv2 and conv3."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1, dropout: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout // 4, 1, stride, bias=False)
        self.bn2 = nn.BatchNorm2d(cout // 4)
        self.conv2 = _conv3x3(cout // 4, cout // 2, 1, dilation)
        self.bn3 = nn.BatchNorm2d(cout // 2)
        self.conv3 = nn.Conv2d(cout // 2, cout, 1, bias=False)
        self.dropout = nn.Dropout2d(dropout)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False) if (cin != cout or stride != 1) else None

    def forward(self, x: torch.Tensor, return_preact: bool = False):
        a = F.relu(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(a)
        out = self.conv1(a)
        out = self.conv2(self.dropout(F.relu(self.bn2(out))))
        out = self.conv3(self.dropout(F.relu(self.bn3(out)))) + shortcut
        return (out, a) if return_preact else out


def _run(stage: nn.Sequential, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run a stage; also return the pre-activation of its first block (= BN-ReLU of the stage input)."""
    x, preact = stage[0](x, return_preact=True)
    for block in stage[1:]:
        x = block(x)
    return x, preact


class ResNet38(nn.Module):
    """ResNet-38 trunk. ``width`` divides every channel count (8 gives the ``resnet38-tiny`` of CPU tests).

    forward(x (B, 3, H, W)) -> [conv3 (B, 256/w, H/4, W/4), conv4 (B, 512/w, H/8, W/8),
                                 conv5 (B, 1024/w, H/s3, W/s3), conv6 (B, 4096/w, H/s4, W/s4)]
    strides [4, 8, 8, 8] at output stride 8 (PSA), [4, 8, 16, 16] at 16, [4, 8, 16, 32] at 32.
    """

    def __init__(self, output_stride: int = 8, width_divisor: int = 1):
        super().__init__()
        c = [n // width_divisor for n in (64, 128, 256, 512, 1024, 2048, 4096)]
        s5, s6 = (1, 1) if output_stride == 8 else (2, 1) if output_stride == 16 else (2, 2)
        d5 = 2 if s5 == 1 else 1                               # a stride given up becomes dilation
        d6 = d5 * 2 if s6 == 1 else d5

        def stage(n: int, cin: int, cmid: int, cout: int, stride: int = 2, dilation: int = 1):
            # the first block's first conv keeps the dilation from before the stage (PSA: first_dilation=1)
            return nn.Sequential(PreActBlock(cin, cmid, cout, stride, dilation, first_dilation=1),
                                 *[PreActBlock(cout, cmid, cout, 1, dilation) for _ in range(n - 1)])

        self.conv1a = nn.Conv2d(3, c[0], 3, padding=1, bias=False)   # (B, 64, H, W)
        self.b2 = stage(3, c[0], c[1], c[1])                          # (B, 128, H/2, W/2)
        self.b3 = stage(3, c[1], c[2], c[2])                          # (B, 256, H/4, W/4)
        self.b4 = stage(6, c[2], c[3], c[3])                          # (B, 512, H/8, W/8)
        self.b5 = stage(3, c[3], c[3], c[4], stride=s5, dilation=d5)  # (B, 1024, H/s3, W/s3)
        self.b6 = nn.Sequential(PreActBottleneck(c[4], c[5], s6, d6, dropout=0.3))  # (B, 2048, H/s4, W/s4)
        self.b7 = nn.Sequential(PreActBottleneck(c[5], c[6], 1, d6, dropout=0.5))   # (B, 4096, H/s4, W/s4)
        self.bn7 = nn.BatchNorm2d(c[6])

        self.out_channels = [c[2], c[3], c[4], c[6]]
        self.strides = [4, 8, 8 * s5, 8 * s5 * s6]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.b3(self.b2(self.conv1a(x)))       # (B, 256, H/4, W/4)
        x, conv3 = _run(self.b4, x)                # conv3 = BN-ReLU(b3 output)
        x, conv4 = _run(self.b5, x)                # conv4 = BN-ReLU(b4 output), (B, 512, H/8, W/8)
        x, conv5 = _run(self.b6, x)                # conv5 = BN-ReLU(b5 output), (B, 1024, H/s3, W/s3)
        conv6 = F.relu(self.bn7(self.b7(x)))       # (B, 4096, H/s4, W/s4)
        return [conv3, conv4, conv5, conv6]
