"""MobileNet-v2 (Sandler et al., 2018) as a four-level backbone, with dilation for output stride.

torchvision's network (built without weights) keeps its module names (``features.0`` ... ``features.17``),
so torchvision's ImageNet state_dict loads unchanged once its last 1x1 conv (``features.18``) and its
``classifier`` are dropped: DeepLab-v3+ on MobileNet-v2 uses the 320-channel output of block 17, as the
public DeepLab code does, with the 24-channel stride-4 features as its low-level input.

    level   blocks           channels (width 1 / mobilenet-tiny at 0.35)   stride at output_stride 8 / 16 / 32
    0       features[0:4]    24 / 8                                        4 / 4 / 4
    1       features[4:7]    32 / 16                                       8 / 8 / 8
    2       features[7:14]   96 / 32                                       8 / 16 / 16
    3       features[14:18]  320 / 112                                     8 / 16 / 32

Output stride by dilation, as DeepLab's MobileNet: a level whose stride-2 block is made stride 1 gets
its depthwise 3x3 convolutions dilated instead; the first block of the level keeps the previous
dilation, the others use the new one (the convention of :mod:`wsss.models.resnet`).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torchvision.models as tvm

LEVELS = ((0, 4), (4, 7), (7, 14), (14, 18))          # block ranges of the four levels
STRIDES = {8: [4, 8, 8, 8], 16: [4, 8, 16, 16], 32: [4, 8, 16, 32]}


def _dilate_level(blocks, dilation: int, previous_dilation: int) -> None:
    """Make a level's first (stride-2) block stride 1 and dilate the depthwise 3x3 convs of its blocks (in place)."""
    for i, block in enumerate(blocks):
        d = previous_dilation if i == 0 else dilation
        for conv in block.modules():
            if isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3):
                conv.stride, conv.dilation, conv.padding = (1, 1), (d, d), (d, d)
        block.stride = 1


class MobileNetV2(nn.Module):
    """torchvision's MobileNet-v2 trunk returning four levels.

    forward(x (B, 3, H, W)) -> [(B, C0, H/4, W/4), (B, C1, H/8, W/8), (B, C2, H/s2, W/s2), (B, C3, H/s3, W/s3)]
    with ``strides = STRIDES[output_stride]`` and ``out_channels = [C0, C1, C2, C3]``.
    """

    def __init__(self, width_mult: float = 1.0, output_stride: int = 16):
        super().__init__()
        if output_stride not in STRIDES:
            raise ValueError(f"output_stride={output_stride!r}: MobileNetV2 supports 8, 16 or 32")
        net = tvm.mobilenet_v2(weights=None, width_mult=width_mult)
        self.features = net.features[:18]                   # block 18 (the 1280-channel 1x1 conv) is not used
        dilation = 1
        for (start, end), stride in zip(LEVELS[2:], STRIDES[output_stride][2:]):
            if stride == STRIDES[output_stride][LEVELS.index((start, end)) - 1]:   # this level gave up its stride 2
                _dilate_level(self.features[start:end], dilation * 2, previous_dilation=dilation)
                dilation *= 2
        self.out_channels = [self.features[end - 1].out_channels for _, end in LEVELS]
        self.strides = list(STRIDES[output_stride])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        levels = []
        for start, end in LEVELS:
            for block in self.features[start:end]:
                x = block(x)
            levels.append(x)                                 # (B, C_i, H/s_i, W/s_i)
        return levels
