"""Backbones and pretrained-weight loading (wsss.models).

One parametrized smoke test over every registered backbone and output stride, then the details:
dilation, MiT attention maps, key layouts of the papers' weight files, and how loading fails.
Where a reference exists here, our network is compared with it on the same weights (torchvision's
ResNet; Hugging Face's SegFormer encoder when transformers is installed).
"""
import contextlib
import time
import warnings

import pytest
import torch
import torchvision
from torchvision.models.feature_extraction import create_feature_extractor

from wsss.models import BACKBONES, build_backbone, load_pretrained
from wsss.models.pretrained import convert_keys
from wsss.models.resnet import apply_output_stride

HEAVY = {"resnet50", "resnet101", "resnet38"}          # full-size nets: a 32 px input keeps them quick
SUPPORTED_OS = {name: ((4, 8, 16, 32) if name.startswith("mit") else (8, 16, 32)) for name in BACKBONES}
CASES = [(name, os_) for name in BACKBONES for os_ in SUPPORTED_OS[name]]


@contextlib.contextmanager
def _no_warnings():
    """Turn every warning inside the block into an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The inputs here are tiny: one intra-op thread is faster than two that wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_registry_lists_every_family():
    assert set(BACKBONES) == {"resnet18", "resnet34", "resnet50", "resnet101", "resnet-tiny",
                              "resnet38", "resnet38-tiny", "mit_b0", "mit_b1", "mit-tiny", "mobilenet_v2",
                              "mobilenet-tiny"}


def test_unknown_name_is_a_value_error_listing_the_names():
    with pytest.raises(ValueError, match=r"name='vgg16'.*resnet-tiny.*mit_b1"):
        build_backbone("vgg16")


@pytest.mark.parametrize("name, output_stride", [("resnet-tiny", 12), ("resnet38-tiny", 4), ("mit-tiny", 12)])
def test_bad_output_stride_is_a_value_error(name, output_stride):
    with pytest.raises(ValueError, match=rf"output_stride={output_stride}"):
        build_backbone(name, output_stride=output_stride)


@pytest.mark.parametrize("name, output_stride", CASES)
def test_every_backbone_gives_its_levels(name, output_stride):
    """Shapes follow out_channels and strides: (B, C_i, H / s_i, W / s_i) for each level."""
    torch.manual_seed(0)
    net = build_backbone(name, output_stride=output_stride).eval()
    H, W = (32, 32) if name in HEAVY else (64, 96)
    expected_strides = {4: [4, 4, 4, 4], 8: [4, 8, 8, 8], 16: [4, 8, 16, 16], 32: [4, 8, 16, 32]}[output_stride]
    assert net.strides == expected_strides
    assert len(net.out_channels) == 4
    with torch.no_grad():
        features = net(torch.randn(1, 3, H, W))
    assert [tuple(f.shape) for f in features] == [
        (1, c, H // s, W // s) for c, s in zip(net.out_channels, net.strides)]
    assert all(torch.isfinite(f).all() for f in features)


@pytest.mark.parametrize("name", ["resnet-tiny", "resnet38-tiny", "mit-tiny"])
def test_tiny_backbones_train_every_parameter(name):
    """A backward pass reaches every parameter (no dead module), in train mode with batch 2."""
    net = build_backbone(name, output_stride=16).train()
    features = net(torch.randn(2, 3, 64, 64))
    sum(f.mean() for f in features).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


# ------------------------------------------------------------------------------------------ dilation
def _convs(net):
    return [(n, m.stride, m.dilation, m.padding) for n, m in net.named_modules() if isinstance(m, torch.nn.Conv2d)]


@pytest.mark.parametrize("output_stride", [8, 16])
def test_our_dilation_reproduces_torchvision_on_bottleneck_nets(output_stride):
    """apply_output_stride (used for BasicBlock nets) does what torchvision does for Bottleneck ones."""
    from torchvision.models.resnet import Bottleneck, ResNet
    from wsss.models.resnet import DILATE
    # two Bottleneck blocks per stage: the first and the later blocks follow different rules
    reference = ResNet(Bottleneck, [2, 2, 2, 2], replace_stride_with_dilation=DILATE[output_stride])
    ours = ResNet(Bottleneck, [2, 2, 2, 2])
    apply_output_stride([ours.layer1, ours.layer2, ours.layer3, ours.layer4], output_stride)
    assert _convs(ours) == _convs(reference)
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(ours.eval()(x), reference.eval()(x), atol=1e-5)


def test_basicblock_dilation_settings():
    net = build_backbone("resnet18", output_stride=8)
    # first block of a dilated stage keeps the previous dilation, the others take the new one
    assert net.layer3[0].conv1.dilation == (1, 1) and net.layer3[1].conv1.dilation == (2, 2)
    assert net.layer4[0].conv1.dilation == (2, 2) and net.layer4[1].conv2.dilation == (4, 4)
    assert net.layer4[1].conv2.padding == (4, 4)
    assert all(m.stride == (1, 1) for m in net.layer3.modules() if isinstance(m, torch.nn.Conv2d))
    assert net.layer2[0].conv1.stride == (2, 2)


def test_dilation_keeps_the_weights_and_grows_the_maps():
    """Same weights at output stride 32, 16, 8: the deepest map is 2x then 4x larger per side."""
    nets = {os_: build_backbone("resnet-tiny", output_stride=os_).eval() for os_ in (32, 16, 8)}
    for os_ in (16, 8):
        nets[os_].load_state_dict(nets[32].state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        out = {os_: net(x) for os_, net in nets.items()}
    assert [out[os_][-1].shape[-1] for os_ in (32, 16, 8)] == [2, 4, 8]
    assert torch.equal(out[8][1], out[32][1])                 # layer2 is untouched by dilation


def test_resnet38_follows_psa():
    """Channel widths, PSA's dilations at output stride 8 and the shapes of PSA's weight tensors."""
    net = build_backbone("resnet38", output_stride=8)
    assert net.out_channels == [256, 512, 1024, 4096]
    assert [b.conv1.dilation for b in net.b5] == [(1, 1), (2, 2), (2, 2)]
    assert net.b5[0].conv2.dilation == (2, 2)
    assert net.b6[0].conv2.dilation == net.b7[0].conv2.dilation == (4, 4)
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert shapes["b5.0.conv1.weight"] == (512, 512, 3, 3)     # PSA b5.conv_branch2a
    assert shapes["b5.0.conv2.weight"] == (1024, 512, 3, 3)    # PSA b5.conv_branch2b1
    assert shapes["b6.0.conv1.weight"] == (512, 1024, 1, 1)    # PSA b6.conv_branch2a
    assert shapes["b7.0.conv2.weight"] == (2048, 1024, 3, 3)   # PSA b7.conv_branch2b1
    assert shapes["b7.0.conv3.weight"] == (4096, 2048, 1, 1)


# --------------------------------------------------------------------------------- MiT attention maps
@pytest.mark.parametrize("name, output_stride", [("mit-tiny", 16), ("mit-tiny", 32), ("mit_b0", 32)])
def test_mit_attention_maps(name, output_stride):
    net = build_backbone(name, output_stride=output_stride).eval()
    H, W = 64, 96
    x = torch.randn(2, 3, H, W)
    with torch.no_grad():
        features, attns = net(x, return_attn=True)
        plain = net(x)
    n_tokens = (H // output_stride) * (W // output_stride)
    heads, depth = {"mit-tiny": (4, 1), "mit_b0": (8, 2)}[name]
    assert len(attns) == depth
    for attn in attns:
        assert attn.shape == (2, heads, n_tokens, n_tokens)
        assert (attn < 0).any()                                  # logits, not probabilities
    # the explicit path (return_attn=True: softmax(logits x scale)) and the fused kernel give the same features
    for a, b in zip(plain, features):
        assert torch.allclose(a, b, atol=1e-5)


def test_mit_attention_logits_are_the_unscaled_q_k_and_scaled_give_the_attention_used():
    """AFA takes q k^T before the scale; the model's attention is softmax(q k^T x scale) (issue 12)."""
    torch.manual_seed(0)
    net = build_backbone("mit-tiny", output_stride=16).eval()
    block = net.blocks[-1][-1]
    seen = {}
    block.attn.q.register_forward_hook(lambda m, i, o: seen.__setitem__("q", o))
    block.attn.kv.register_forward_hook(lambda m, i, o: seen.__setitem__("kv", o))
    block.attn.register_forward_hook(lambda m, i, o: seen.__setitem__("out", o[0]))
    with torch.no_grad():
        _, attns = net(torch.randn(1, 3, 64, 64), return_attn=True)
        heads, d = block.attn.heads, seen["q"].shape[-1] // block.attn.heads
        q = seen["q"].reshape(1, -1, heads, d).transpose(1, 2)
        k, v = seen["kv"].reshape(1, -1, 2, heads, d).permute(2, 0, 3, 1, 4)
        assert torch.allclose(attns[-1], q @ k.transpose(-2, -1), atol=1e-4)
        assert block.attn.scale == pytest.approx(d ** -0.5)
        used = (attns[-1] * block.attn.scale).softmax(-1)
        out = block.attn.proj((used @ v).transpose(1, 2).reshape(1, -1, heads * d))
        assert torch.allclose(out, seen["out"], atol=1e-5)


# ------------------------------------------------------------------------ reference implementations
@pytest.mark.parametrize("arch, output_stride", [("resnet18", 32), ("resnet18", 8), ("resnet50", 16)])
def test_resnet_matches_torchvision_on_its_weights(tmp_path, arch, output_stride):
    """A torchvision state_dict (fc included) loads without warning and gives torchvision's features."""
    from wsss.models.resnet import DILATE
    kwargs = {"replace_stride_with_dilation": DILATE[output_stride]} if arch == "resnet50" else {}
    reference = getattr(torchvision.models, arch)(weights=None, **kwargs).eval()
    if arch != "resnet50":
        apply_output_stride([reference.layer1, reference.layer2, reference.layer3, reference.layer4], output_stride)
    torch.save(reference.state_dict(), tmp_path / f"{arch}.pth")
    with _no_warnings():
        ours = build_backbone(arch, output_stride=output_stride, pretrained=str(tmp_path / f"{arch}.pth")).eval()
    layers = ["layer1", "layer2", "layer3", "layer4"]
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        expected = create_feature_extractor(reference, layers)(x)
        got = ours(x)
    for layer, g in zip(layers, got):
        assert torch.allclose(g, expected[layer], atol=1e-5)


@pytest.mark.parametrize("name, dims", [("mit_b0", [32, 64, 160, 256]), ("mit_b1", [64, 128, 320, 512])])
def test_mit_matches_huggingface_segformer(tmp_path, name, dims):
    """Our MiT on a Hugging Face SegFormer state_dict reproduces its encoder's hidden states."""
    transformers = pytest.importorskip("transformers")
    config = transformers.SegformerConfig(hidden_sizes=dims, num_attention_heads=[1, 2, 5, 8], depths=[2, 2, 2, 2])
    reference = transformers.SegformerForImageClassification(config).eval()
    torch.save(reference.state_dict(), tmp_path / "hf.bin")
    with _no_warnings():
        ours = build_backbone(name, output_stride=32, pretrained=str(tmp_path / "hf.bin")).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        expected = reference.segformer(x, output_hidden_states=True).hidden_states
        got = ours(x)
    for e, g in zip(expected, got):                  # LayerNorm eps 1e-6 (SegFormer) vs 1e-5 (HF)
        assert torch.allclose(g, e, atol=1e-4)


BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _psa_resnet38_keys():
    """Every tensor name of PSA's network/resnet38d.py Net (written from its layer list), plus fc8."""
    keys = ["conv1a.weight"]
    for stage, n in (("b2", 3), ("b3", 3), ("b4", 6), ("b5", 3)):
        for i in range(n):
            block = stage if i == 0 else f"{stage}_{i}"
            keys += [f"{block}.{bn}.{p}" for bn in ("bn_branch2a", "bn_branch2b1") for p in BN]
            keys += [f"{block}.conv_branch2a.weight", f"{block}.conv_branch2b1.weight"]
            keys += [f"{block}.conv_branch1.weight"] if i == 0 else []
    for block in ("b6", "b7"):
        keys += [f"{block}.{bn}.{p}" for bn in ("bn_branch2a", "bn_branch2b1", "bn_branch2b2") for p in BN]
        keys += [f"{block}.conv_branch{c}.weight" for c in ("2a", "2b1", "2b2", "1")]
    return keys + [f"bn7.{p}" for p in BN] + ["fc8.weight"]


def test_psa_resnet38_names_map_one_to_one():
    net = build_backbone("resnet38-tiny", output_stride=8)
    psa = {k: torch.zeros(1) for k in _psa_resnet38_keys()}
    assert set(convert_keys("resnet38-tiny", psa)) == set(net.state_dict())
    renamed = convert_keys("resnet38", {"b4_5.conv_branch2a.weight": 1, "b5.conv_branch1.weight": 2,
                                        "b7.bn_branch2b2.running_var": 3, "fc8.weight": 4})
    assert renamed == {"b4.5.conv1.weight": 1, "b5.0.shortcut.weight": 2, "b7.0.bn3.running_var": 3}


def test_official_segformer_names_map_one_to_one():
    """The layout of SegFormer's released mit_b*.pth (also AFA's and TSCD's, under ``encoder.``)."""
    net = build_backbone("mit_b0", output_stride=32)
    keys = ["head.weight", "head.bias"]
    for i, (depth, sr) in enumerate(zip([2, 2, 2, 2], [8, 4, 2, 1]), start=1):
        keys += [f"patch_embed{i}.{m}.{p}" for m in ("proj", "norm") for p in ("weight", "bias")]
        keys += [f"norm{i}.{p}" for p in ("weight", "bias")]
        mods = ["norm1", "attn.q", "attn.kv", "attn.proj", "norm2", "mlp.fc1", "mlp.dwconv.dwconv", "mlp.fc2"]
        mods += ["attn.sr", "attn.norm"] if sr > 1 else []
        keys += [f"block{i}.{j}.{m}.{p}" for j in range(depth) for m in mods for p in ("weight", "bias")]
    assert set(convert_keys("mit_b0", {k: 0 for k in keys})) == set(net.state_dict())
    afa = convert_keys("mit_b1", {"encoder.block4.1.mlp.dwconv.dwconv.weight": 0})
    assert list(afa) == ["blocks.3.1.mlp.dwconv.weight"]


# ----------------------------------------------------------------------------------- local files
def _outputs(net, x):
    with torch.no_grad():
        return net.eval()(x)


@pytest.mark.parametrize("name", ["resnet-tiny", "resnet38-tiny", "mit-tiny"])
def test_state_dict_round_trip(tmp_path, name):
    torch.manual_seed(0)
    source = build_backbone(name)
    torch.save(source.state_dict(), tmp_path / "w.pth")
    x = torch.randn(1, 3, 64, 64)
    assert not torch.allclose(_outputs(build_backbone(name), x)[-1], _outputs(source, x)[-1])  # random init differs
    with _no_warnings():
        loaded = build_backbone(name, pretrained=str(tmp_path / "w.pth"))
    for a, b in zip(_outputs(loaded, x), _outputs(source, x)):
        assert torch.equal(a, b)


@pytest.mark.parametrize("wrap", [
    lambda sd: {"state_dict": {"module." + k: v for k, v in sd.items()}},
    lambda sd: {"model": {"module.net.backbone." + k: v for k, v in sd.items()}
                | {"module.net.classifier.weight": torch.ones(3)}, "epoch": 7},
], ids=["ddp-state_dict", "whole-model-checkpoint"])
def test_checkpoint_wrappers_and_prefixes_are_stripped(tmp_path, wrap):
    source = build_backbone("resnet-tiny")
    torch.save(wrap(source.state_dict()), tmp_path / "ckpt.pth")
    with _no_warnings():
        loaded = build_backbone("resnet-tiny", pretrained=str(tmp_path / "ckpt.pth"))
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(_outputs(loaded, x)[-1], _outputs(source, x)[-1])


def test_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        build_backbone("resnet-tiny", pretrained=str(tmp_path / "nope.pth"))


def test_weights_of_another_architecture_are_refused(tmp_path):
    torch.save(build_backbone("resnet18").state_dict(), tmp_path / "r18.pth")
    with pytest.raises(ValueError, match=r"r18\.pth.*do not fit backbone 'resnet-tiny'"):
        build_backbone("resnet-tiny", pretrained=str(tmp_path / "r18.pth"))


def test_a_file_matching_nothing_is_refused(tmp_path):
    torch.save({"encoder.conv.weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match=r"other\.pth.*no tensor matches"):
        build_backbone("mit-tiny", pretrained=str(tmp_path / "other.pth"))


def test_partial_file_loads_with_one_warning(tmp_path):
    state = build_backbone("resnet-tiny").state_dict()
    partial = {k: v for k, v in state.items() if not k.startswith("layer4.")} | {"extra.weight": torch.ones(1)}
    torch.save(partial, tmp_path / "partial.pth")
    with pytest.warns(UserWarning) as record:
        net = build_backbone("resnet-tiny", pretrained=str(tmp_path / "partial.pth"))
    assert len(record) == 1
    assert "layer4.0.conv1.weight" in str(record[0].message) and "extra.weight" in str(record[0].message)
    assert torch.equal(net.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])


def test_pickled_objects_are_not_loaded(tmp_path):
    import argparse
    torch.save({"state_dict": build_backbone("resnet-tiny").state_dict(), "args": argparse.Namespace(lr=1)},
               tmp_path / "ckpt.pth")
    with pytest.raises(ValueError, match="weights_only"):
        build_backbone("resnet-tiny", pretrained=str(tmp_path / "ckpt.pth"))


# ---------------------------------------------------------------------------- "imagenet", offline
def _load_imagenet_offline(name):
    """load_pretrained(..., "imagenet"): (warnings raised, seconds taken, whether the weights changed)."""
    torch.manual_seed(0)
    net = build_backbone(name)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        load_pretrained(net, name, "imagenet")
    seconds = time.perf_counter() - start
    unchanged = all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    return record, seconds, unchanged


@pytest.mark.parametrize("name", ["resnet18", "mit_b0", "resnet38-tiny", "resnet-tiny", "mobilenet_v2"])
def test_imagenet_offline_warns_once_and_keeps_the_model(tmp_path, monkeypatch, name):
    monkeypatch.setenv("WSSS_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))            # an empty torch-hub cache
    record, seconds, unchanged = _load_imagenet_offline(name)
    assert [w.category for w in record] == [RuntimeWarning]
    assert "randomly initialised" in str(record[0].message)
    assert seconds < 2 and unchanged


def test_imagenet_with_an_unreachable_host_warns_once(tmp_path, monkeypatch):
    """No WSSS_OFFLINE, but the network refuses: the reachability probe fails fast, no download is tried."""
    import socket

    def refuse(*args, **kwargs):
        raise OSError("network unreachable")
    monkeypatch.delenv("WSSS_OFFLINE", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda *a, **k: pytest.fail("tried to download"))
    record, seconds, unchanged = _load_imagenet_offline("resnet18")
    assert [w.category for w in record] == [RuntimeWarning] and "unreachable" in str(record[0].message)
    assert seconds < 2 and unchanged


def test_reachability_probe_does_not_wait_on_a_stalled_dns(monkeypatch):
    import socket
    from wsss.models.pretrained import _reachable

    def stalled_lookup(*args, **kwargs):
        time.sleep(3)
        raise OSError("no answer")
    monkeypatch.setattr(socket, "getaddrinfo", stalled_lookup)
    start = time.perf_counter()
    assert _reachable("https://download.pytorch.org/models/x.pth", timeout=0.2) is False
    assert time.perf_counter() - start < 1


def test_mit_takes_an_input_smaller_than_its_reduction_ratio():
    """TSCD's 0.3 view of a 48 px crop is 14 px: a 4 x 4 first-stage map under an 8 x 8 reduction conv."""
    net = build_backbone("mit-tiny", output_stride=8).eval()
    with torch.no_grad():
        features = net(torch.randn(1, 3, 14, 14))
    assert features[-1].shape[-2:] == (2, 2) and torch.isfinite(features[-1]).all()


def test_mobilenet_v2_loads_torchvision_weights_from_a_file(tmp_path):
    """torchvision's MobileNet-v2 state dict (classifier and the last 1x1 conv included) loads into ours without a
    missing or unexpected key, and the levels match torchvision's own blocks at output stride 32."""
    import torchvision
    ref = torchvision.models.mobilenet_v2(weights=None).eval()
    torch.save(ref.state_dict(), tmp_path / "mnv2.pth")
    with warnings.catch_warnings():
        warnings.simplefilter("error")                       # a missing or unexpected key would warn
        net = build_backbone("mobilenet_v2", pretrained=str(tmp_path / "mnv2.pth"), output_stride=32).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ours = net(x)
        expected = ref.features[:18](x)
    assert torch.allclose(ours[-1], expected, atol=1e-5)


def test_mobilenet_output_stride_dilates_the_depthwise_convs():
    net = build_backbone("mobilenet-tiny", output_stride=8)
    dw = [m for m in net.features[14:18].modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert [m.stride for m in dw] == [(1, 1)] * 4 and [m.dilation for m in dw] == [(2, 2), (4, 4), (4, 4), (4, 4)]
