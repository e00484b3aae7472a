"""ResNet backbones (He et al., 2016) that return the four stage outputs, with dilation for output stride.

``resnet18/34/50/101`` are torchvision's networks (built without weights); ``resnet-tiny`` is a
one-block-per-stage BasicBlock net of widths 16/32/64/128 for quick CPU runs. All keep torchvision's
module names (``conv1, bn1, layer1..layer4``), so a torchvision state_dict loads unchanged once its
``fc.*`` classifier is dropped.

Output stride by dilation (DeepLab): a stage whose stride-2 downsampling is removed gets its 3x3
convolutions dilated instead, so the receptive field grows as if the stride were still there.

    output_stride   stage strides (layer1..4)   dilations (layer1..4)
    32              4, 8, 16, 32                1, 1, 1, 1
    16              4, 8, 16, 16                1, 1, 1, 2
    8               4, 8,  8,  8                1, 1, 2, 4

Bottleneck nets get this from torchvision's ``replace_stride_with_dilation``. torchvision refuses
dilation in BasicBlock (ResNet-18/34), so :func:`dilate_stage` edits the built convolutions with the
same convention: the first block of a dilated stage keeps the previous dilation, the others use the
new one (tests check that it reproduces torchvision's Bottleneck dilation exactly).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torchvision.models as tvm
from torchvision.models.resnet import BasicBlock, conv1x1

# output_stride -> which of layer2, layer3, layer4 trade their stride 2 for dilation (torchvision's format)
DILATE = {8: [False, True, True], 16: [False, False, True], 32: [False, False, False]}
STRIDES = {8: [4, 8, 8, 8], 16: [4, 8, 16, 16], 32: [4, 8, 16, 32]}

TORCHVISION_ARCHS = {"resnet18": tvm.resnet18, "resnet34": tvm.resnet34,
                     "resnet50": tvm.resnet50, "resnet101": tvm.resnet101}


def dilate_stage(stage: nn.Sequential, dilation: int, previous_dilation: int) -> None:
    """Make a stride-2 residual stage stride 1, dilating its 3x3 convolutions (in place).

    Works for torchvision's BasicBlock and Bottleneck: every convolution of the stage gets stride 1
    (the first block's 3x3 conv and its downsample shortcut are the strided ones) and every 3x3
    convolution gets dilation = padding = ``previous_dilation`` in the first block and ``dilation``
    in the others, which is what torchvision's ``_make_layer`` does for Bottleneck.
    """
    for i, block in enumerate(stage):
        d = previous_dilation if i == 0 else dilation
        for conv in block.modules():
            if isinstance(conv, nn.Conv2d):
                conv.stride = (1, 1)
                if conv.kernel_size == (3, 3):
                    conv.dilation, conv.padding = (d, d), (d, d)
        if hasattr(block, "stride"):
            block.stride = 1


def apply_output_stride(stages: list[nn.Sequential], output_stride: int) -> None:
    """Dilate layer2..layer4 of a stride-32 ResNet in place to reach ``output_stride`` (8, 16 or 32)."""
    dilation = 1
    for stage, dilate in zip(stages[1:], DILATE[output_stride]):
        if dilate:
            dilate_stage(stage, dilation * 2, previous_dilation=dilation)
            dilation *= 2


def _basic_stage(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    """``blocks`` torchvision BasicBlocks of width ``planes``; the first one downsamples by ``stride``."""
    shortcut = None
    if stride != 1 or inplanes != planes:
        shortcut = nn.Sequential(conv1x1(inplanes, planes, stride), nn.BatchNorm2d(planes))
    return nn.Sequential(BasicBlock(inplanes, planes, stride, shortcut),
                         *[BasicBlock(planes, planes) for _ in range(blocks - 1)])


class ResNet(nn.Module):
    """A ResNet trunk returning its four stages.

    forward(x (B, 3, H, W)) -> [layer1 (B, C1, H/4, W/4), layer2 (B, C2, H/8, W/8),
                                 layer3 (B, C3, H/s3, W/s3), layer4 (B, C4, H/s4, W/s4)]
    with ``strides = [4, 8, s3, s4]`` and ``out_channels = [C1, C2, C3, C4]``.
    Build it with :meth:`from_torchvision` or :meth:`small`.
    """

    def __init__(self, conv1: nn.Conv2d, bn1: nn.BatchNorm2d, stages: list[nn.Sequential],
                 out_channels: list[int], output_stride: int):
        super().__init__()
        self.conv1, self.bn1 = conv1, bn1
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.out_channels = list(out_channels)
        self.strides = list(STRIDES[output_stride])

    @classmethod
    def from_torchvision(cls, arch: str, output_stride: int = 16) -> "ResNet":
        """torchvision's ``arch`` (resnet18/34/50/101), random weights, dilated to ``output_stride``."""
        build = TORCHVISION_ARCHS[arch]
        bottleneck = arch in ("resnet50", "resnet101")
        if bottleneck:
            net = build(weights=None, replace_stride_with_dilation=DILATE[output_stride])
        else:                                                  # BasicBlock: dilate after construction
            net = build(weights=None)
            apply_output_stride([net.layer1, net.layer2, net.layer3, net.layer4], output_stride)
        widths = [64, 128, 256, 512]
        out_channels = [w * 4 for w in widths] if bottleneck else widths
        return cls(net.conv1, net.bn1, [net.layer1, net.layer2, net.layer3, net.layer4], out_channels,
                   output_stride)

    @classmethod
    def small(cls, widths: tuple[int, ...] = (16, 32, 64, 128), blocks: tuple[int, ...] = (1, 1, 1, 1),
              output_stride: int = 16) -> "ResNet":
        """A BasicBlock ResNet of custom widths (the ``resnet-tiny`` of quick CPU runs)."""
        conv1 = nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
        stages, inplanes = [], widths[0]
        for i, (planes, n) in enumerate(zip(widths, blocks)):
            stages.append(_basic_stage(inplanes, planes, n, stride=1 if i == 0 else 2))
            inplanes = planes
        apply_output_stride(stages, output_stride)
        net = cls(conv1, nn.BatchNorm2d(widths[0]), stages, list(widths), output_stride)
        for m in net.modules():                                # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        return net

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (B, C0, H/4, W/4)
        features = []
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)                                       # (B, C_i, H/s_i, W/s_i)
            features.append(x)
        return features
