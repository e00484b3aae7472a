"""Networks: backbones (ResNet, ResNet-38, MiT) behind one :func:`build_backbone`, and their weights.

    from wsss.models import build_backbone, BACKBONES
    net = build_backbone("resnet101", pretrained="imagenet", output_stride=16)
    features = net(images)     # [(B, C_i, H / s_i, W / s_i)], C_i = net.out_channels[i], s_i = net.strides[i]

Heads that take a backbone (CAM classifier, DeepLab-v3+) are in :mod:`wsss.models.heads`.
"""
from .backbones import BACKBONES, build_backbone
from .mit import MixTransformer
from .pretrained import load_pretrained
from .resnet import ResNet
from .resnet38 import ResNet38

__all__ = ["BACKBONES", "build_backbone", "load_pretrained", "MixTransformer", "ResNet", "ResNet38"]
