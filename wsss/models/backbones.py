"""The backbone registry: one name -> one constructor, and :func:`build_backbone`, the only entry point.

Every backbone maps ImageNet-normalised images (B, 3, H, W) to a list of feature maps, shallow to
deep, and carries ``out_channels`` (channels of each level) and ``strides`` (input pixels per
feature pixel of each level). MiT backbones also take ``return_attn=True`` (see ``mit.py``).

    name            levels (channels)             strides at output_stride 8 / 16 / 32
    resnet18, 34    64, 128, 256, 512             [4,8,8,8] / [4,8,16,16] / [4,8,16,32]
    resnet50, 101   256, 512, 1024, 2048          same
    resnet-tiny     16, 32, 64, 128               same
    resnet38        256, 512, 1024, 4096          same (8 in PSA)
    resnet38-tiny   32, 64, 128, 512              same
    mit_b0          32, 64, 160, 256              [4,8,8,8] / [4,8,16,16] / [4,8,16,32]; 4: [4,4,4,4]
    mit_b1          64, 128, 320, 512             same
    mit-tiny        16, 32, 64, 128               same
    mobilenet_v2    24, 32, 96, 320               [4,8,8,8] / [4,8,16,16] / [4,8,16,32]
    mobilenet-tiny  8, 16, 32, 112                same (torchvision's width_mult 0.35)
"""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

from .mit import CONFIGS as MIT_CONFIGS, MixTransformer
from .mobilenet import MobileNetV2
from .pretrained import load_pretrained
from .resnet import ResNet
from .resnet38 import ResNet38

# name -> (constructor(output_stride) -> module, the output strides it supports)
_REGISTRY: dict[str, tuple[Callable[[int], nn.Module], tuple[int, ...]]] = {
    "resnet18": (lambda os_: ResNet.from_torchvision("resnet18", os_), (8, 16, 32)),
    "resnet34": (lambda os_: ResNet.from_torchvision("resnet34", os_), (8, 16, 32)),
    "resnet50": (lambda os_: ResNet.from_torchvision("resnet50", os_), (8, 16, 32)),
    "resnet101": (lambda os_: ResNet.from_torchvision("resnet101", os_), (8, 16, 32)),
    "resnet-tiny": (lambda os_: ResNet.small((16, 32, 64, 128), (1, 1, 1, 1), os_), (8, 16, 32)),
    "resnet38": (lambda os_: ResNet38(os_), (8, 16, 32)),
    "resnet38-tiny": (lambda os_: ResNet38(os_, width_divisor=8), (8, 16, 32)),
    "mit_b0": (lambda os_: MixTransformer(MIT_CONFIGS["mit_b0"], os_), (4, 8, 16, 32)),
    "mit_b1": (lambda os_: MixTransformer(MIT_CONFIGS["mit_b1"], os_), (4, 8, 16, 32)),
    "mit-tiny": (lambda os_: MixTransformer(MIT_CONFIGS["mit-tiny"], os_), (4, 8, 16, 32)),
    "mobilenet_v2": (lambda os_: MobileNetV2(1.0, os_), (8, 16, 32)),
    "mobilenet-tiny": (lambda os_: MobileNetV2(0.35, os_), (8, 16, 32)),
}

BACKBONES: tuple[str, ...] = tuple(_REGISTRY)


def build_backbone(name: str, *, pretrained: str | None = None, output_stride: int = 16) -> nn.Module:
    """Build the backbone ``name`` (one of :data:`BACKBONES`), randomly initialised.

    ``pretrained``: None, a path to a state_dict / checkpoint file, or ``"imagenet"`` for the standard
    weights (torchvision for ResNet and MobileNet-v2, Hugging Face ``nvidia/mit-b*`` for MiT), or ``"standin"``
    for the stand-in of :mod:`wsss.models.standins` (the synthetic benchmark's ImageNet); see
    :func:`wsss.models.pretrained.load_pretrained`. ``output_stride``: 8, 16 or 32 (MiT also 4).
    """
    if name not in _REGISTRY:
        raise ValueError(f"name={name!r} is not a known backbone; choose one of {', '.join(BACKBONES)}")
    build, supported = _REGISTRY[name]
    if output_stride not in supported:
        raise ValueError(f"output_stride={output_stride!r} is not supported by {name}; "
                         f"choose one of {', '.join(map(str, supported))}")
    model = build(output_stride)
    if pretrained is not None:
        load_pretrained(model, name, pretrained)
    return model
