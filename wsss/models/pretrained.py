"""Pretrained weights for the backbones: from a local file, or the standard ImageNet source when online.

``load_pretrained(model, name, source)`` with ``source`` either

- a path to a state_dict or checkpoint (a dict holding it under ``"state_dict"`` or ``"model"``),
  in our key layout or in the layout of the code the papers used: torchvision ResNet, PSA's ResNet-38
  (``b4_5.conv_branch2a.weight``), official SegFormer MiT (``block1.0.attn.kv.weight``; AFA and TSCD
  under ``encoder.``) or Hugging Face SegFormer (hub files: ``segformer.encoder.block.0.0.attention.
  self.key.weight``; transformers 5 in memory: ``segformer.stages.0.blocks.0.attention.k_proj.weight``;
  separate key/value Linears are concatenated into our ``kv``). ``module.`` prefixes
  (DataParallel / DDP) are removed and keys are cut after ``backbone.``, so a whole WSSS model's
  checkpoint gives its backbone. Tensors whose shape differs, or a file of which no tensor matches,
  raise a ValueError naming the file; keys missing on either side are listed in one warning.
- ``"imagenet"``: torchvision's IMAGENET1K_V1 weights for ResNet-18/34/50/101 and MobileNet-v2 (the classic ones the
  papers start from), the Hugging Face hub's ``nvidia/mit-b0`` / ``nvidia/mit-b1`` for MiT (needs the
  ``huggingface_hub`` package). Files already in the local torch-hub / Hugging Face cache are used
  without a network. Otherwise, when offline (``WSSS_OFFLINE=1``, ``HF_HUB_OFFLINE=1`` for the hub,
  or the host not answering a 2 s connect), or when the download fails, one RuntimeWarning says so
  and the model stays randomly initialised. ResNet-38 and the tiny nets have no standard source:
  a RuntimeWarning says where to get the weights.

- ``"standin"``: the stand-in pretrained backbone of :mod:`wsss.models.standins` (a tag classifier trained
  once on a classification set drawn from the benchmark's generator, the miniature's ImageNet): committed
  for the tiny backbones, built once into the cache for the others.

Files are read with ``torch.load(..., map_location="cpu", weights_only=True)``, which refuses
pickled Python objects; a checkpoint holding such objects gives a ValueError saying how to fix it.
"""
from __future__ import annotations

import os
import pickle
import re
import socket
import threading
import warnings
from pathlib import Path
from urllib.parse import urlparse

import torch
import torch.nn as nn

TORCHVISION_WEIGHTS = {"resnet18": "ResNet18_Weights", "resnet34": "ResNet34_Weights",
                       "resnet50": "ResNet50_Weights", "resnet101": "ResNet101_Weights",
                       "mobilenet_v2": "MobileNet_V2_Weights"}
HF_REPOS = {"mit_b0": "nvidia/mit-b0", "mit_b1": "nvidia/mit-b1"}
PSA_WEIGHTS_HINT = ("PSA's ImageNet weights for ResNet-38 (ilsvrc-cls_rna-a1_cls1000_ep-0001.params, "
                    "converted to a .pth with PSA's convert_mxnet_to_torch)")


def load_pretrained(model: nn.Module, name: str, source: str) -> nn.Module:
    """Load weights into backbone ``model`` (registered as ``name``) from ``source``; returns ``model``."""
    if source == "imagenet":
        state, origin = _fetch_imagenet(name)
        if state is None:
            return model                      # already warned: the model stays randomly initialised
    elif source == "standin":                 # the miniature's ImageNet: wsss.models.standins
        from .standins import weights
        path = weights(name)
        state, origin = read_state_dict(path), str(path)
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"pretrained={source!r}: no such file: {path}")
        state, origin = read_state_dict(path), str(path)
    _load_matching(model, convert_keys(name, state), origin, name)
    return model


# ----------------------------------------------------------------------------------------- local files
def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a state_dict file, unwrapped from a ``{"state_dict": ...}`` / ``{"model": ...}`` checkpoint."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return load_file(str(path), device="cpu")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(f"{path}: holds pickled Python objects besides tensors, which are not loaded for "
                         "safety (torch.load weights_only=True). Re-save only the weights: "
                         "torch.save(checkpoint['state_dict'], 'weights.pth').") from e
    while isinstance(obj, dict) and any(isinstance(obj.get(k), dict) for k in ("state_dict", "model")):
        obj = obj["state_dict"] if isinstance(obj.get("state_dict"), dict) else obj["model"]
    if not isinstance(obj, dict) or not any(torch.is_tensor(v) for v in obj.values()):
        raise ValueError(f"{path}: expected a state_dict (a dict of tensors), found {type(obj).__name__}")
    return {k: v for k, v in obj.items() if torch.is_tensor(v)}


def _strip_wrappers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop ``module.`` prefixes; if some keys hold ``backbone.``, keep those, cut after it."""
    state = {re.sub(r"^(module\.)+", "", k): v for k, v in state.items()}
    if any(k.startswith("backbone.") or ".backbone." in k for k in state):
        state = {k[k.index("backbone.") + len("backbone."):]: v for k, v in state.items() if "backbone." in k}
    return state


# ------------------------------------------------------------------------------------ key conversion
# (pattern, replacement) applied in order with re.sub to every key; a key renamed to "" is dropped.
_PSA_RESNET38 = [                 # PSA network/resnet38d.py -> ours (resnet38.py)
    (r"^fc8\..*|^f\d.*", ""),                               # classifier / affinity heads of PSA nets
    (r"^b(\d)\.(?!\d)", r"b\1.0."),                          # b5.xxx   -> b5.0.xxx (first block)
    (r"^b(\d)_(\d)\.", r"b\1.\2."),                         # b4_5.xxx -> b4.5.xxx
    (r"\.bn_branch2a\.", ".bn1."), (r"\.conv_branch2a\.", ".conv1."),
    (r"\.bn_branch2b1\.", ".bn2."), (r"\.conv_branch2b1\.", ".conv2."),
    (r"\.bn_branch2b2\.", ".bn3."), (r"\.conv_branch2b2\.", ".conv3."),
    (r"\.conv_branch1\.", ".shortcut."),
]
_MIT = [                          # official SegFormer and Hugging Face SegFormer -> ours (mit.py)
    (r"^head\..*|^classifier\..*|^decode_head\..*", ""),   # classification / segmentation heads
    (r"^segformer\.", ""), (r"^encoder\.", ""),             # Hugging Face and AFA wrappers
    # official layout: patch_embed1 / block1.0 / norm1 (1-based stages)
    (r"^patch_embed(\d)\.", lambda m: f"patch_embeds.{int(m[1]) - 1}."),
    (r"^block(\d)\.", lambda m: f"blocks.{int(m[1]) - 1}."),
    (r"^norm(\d)\.", lambda m: f"norms.{int(m[1]) - 1}."),
    # Hugging Face hub files (transformers 4): patch_embeddings.0 / block.0.0 / layer_norm.0
    (r"^patch_embeddings\.", "patch_embeds."), (r"^block\.", "blocks."), (r"^layer_norm\.", "norms."),
    # transformers 5 in memory: stages.0.patch_embeddings / stages.0.blocks.0 / stages.0.layer_norm
    (r"^stages\.(\d)\.patch_embeddings\.", r"patch_embeds.\1."), (r"^stages\.(\d)\.blocks\.", r"blocks.\1."),
    (r"^stages\.(\d)\.layer_norm\.", r"norms.\1."),
    (r"^(patch_embeds\.\d)\.layer_norm\.", r"\1.norm."),
    (r"\.(layer_norm_1|layernorm_before)\.", ".norm1."), (r"\.(layer_norm_2|layernorm_after)\.", ".norm2."),
    (r"\.attention\.(self\.query|q_proj)\.", ".attn.q."), (r"\.attention\.(self\.key|k_proj)\.", ".attn.k."),
    (r"\.attention\.(self\.value|v_proj)\.", ".attn.v."), (r"\.attention\.(output\.dense|o_proj)\.", ".attn.proj."),
    (r"\.attention\.(self\.sr|sequence_reduction\.sequence_reduction)\.", ".attn.sr."),
    (r"\.attention\.(self|sequence_reduction)\.layer_norm\.", ".attn.norm."),
    (r"\.mlp\.dense1\.", ".mlp.fc1."), (r"\.mlp\.dense2\.", ".mlp.fc2."),
    (r"\.mlp\.dwconv\.dwconv\.", ".mlp.dwconv."),           # all three layouts nest the depthwise conv
]


def _rename(state: dict[str, torch.Tensor], rules) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        for pattern, repl in rules:
            key = re.sub(pattern, repl, key)
        if key:
            out[key] = value
    return out


def convert_keys(name: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the keys of ``state`` (any supported layout) to those of backbone ``name``."""
    state = _strip_wrappers(state)
    if name.startswith("resnet38"):
        return _rename(state, _PSA_RESNET38)
    if name.startswith("resnet"):
        return {k: v for k, v in state.items() if not k.startswith("fc.")}   # torchvision's classifier
    if name.startswith("mobilenet"):    # torchvision's classifier and last 1x1 conv (DeepLab uses block 17's output)
        return {k: v for k, v in state.items() if not k.startswith(("classifier.", "features.18."))}
    if name.startswith("mit"):
        state = _rename(state, _MIT)
        # Hugging Face keeps keys and values in two Linears; ours is one, keys first: kv = [k; v]
        for k_key in [k for k in state if ".attn.k." in k]:
            v_key = k_key.replace(".attn.k.", ".attn.v.")
            if v_key in state:
                state[k_key.replace(".attn.k.", ".attn.kv.")] = torch.cat([state.pop(k_key), state.pop(v_key)])
        return state
    return state


def _load_matching(model: nn.Module, state: dict[str, torch.Tensor], origin: str, name: str) -> None:
    """load_state_dict(strict=False), but refuse shape mismatches and files that match nothing."""
    own = model.state_dict()
    matched = {k: v for k, v in state.items() if k in own}
    wrong = [f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
             for k, v in matched.items() if v.shape != own[k].shape]
    if wrong:
        raise ValueError(f"{origin}: {len(wrong)} tensor(s) do not fit backbone {name!r} "
                         f"(another architecture?): " + "; ".join(wrong[:5]))
    if not matched:
        raise ValueError(f"{origin}: no tensor matches a parameter of backbone {name!r} "
                         f"(file keys start with {sorted(state)[:3]}, the model's with {list(own)[:3]})")
    model.load_state_dict(matched, strict=False)
    missing = [k for k in own if k not in matched and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        warnings.warn(f"{origin}: loaded {len(matched)} tensors into {name}; {len(missing)} missing "
                      f"(kept random) {missing[:8]}, {len(unexpected)} unexpected (ignored) {unexpected[:8]}",
                      stacklevel=3)


# ---------------------------------------------------------------------------------- standard sources
def _offline(hub: bool = False) -> bool:
    flags = ["WSSS_OFFLINE"] + (["HF_HUB_OFFLINE"] if hub else [])
    return any(os.environ.get(f, "").strip().lower() in ("1", "true", "yes", "on") for f in flags)


def _reachable(url: str, timeout: float = 2.0) -> bool:
    """Whether the host of ``url`` accepts a TCP connection within ``timeout`` seconds.

    The probe runs in a daemon thread so that a stalled DNS lookup (not covered by the socket
    timeout) cannot hold the caller longer than ``timeout`` either.
    """
    parsed = urlparse(url)
    answered = threading.Event()

    def probe():
        try:
            with socket.create_connection((parsed.hostname, parsed.port or 443), timeout=timeout):
                answered.set()
        except OSError:
            pass
    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)                      # returns as soon as the probe ends, at the latest after timeout
    return answered.is_set()


def _not_fetched(name: str, where: str, why: str) -> tuple[None, str]:
    warnings.warn(f"pretrained='imagenet': ImageNet weights for {name} could not be fetched from {where} "
                  f"({why}); the model stays randomly initialised.", RuntimeWarning, stacklevel=5)
    return None, where


def _fetch_imagenet(name: str) -> tuple[dict[str, torch.Tensor] | None, str]:
    """(state_dict, where it came from), or (None, ...) after one RuntimeWarning."""
    if name in TORCHVISION_WEIGHTS:
        return _fetch_torchvision(name)
    if name in HF_REPOS:
        return _fetch_huggingface(name)
    hint = PSA_WEIGHTS_HINT if name.startswith("resnet38") else "weights you trained yourself"
    warnings.warn(f"pretrained='imagenet': there is no standard ImageNet source for {name}; pass the path of "
                  f"{hint} instead. The model stays randomly initialised.", RuntimeWarning, stacklevel=3)
    return None, ""


def _fetch_torchvision(name: str) -> tuple[dict[str, torch.Tensor] | None, str]:
    from torchvision.models import get_weight
    url = get_weight(f"{TORCHVISION_WEIGHTS[name]}.IMAGENET1K_V1").url
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name
    if not cached.is_file():
        if _offline():
            return _not_fetched(name, url, "WSSS_OFFLINE is set")
        if not _reachable(url):
            return _not_fetched(name, url, "host unreachable")
    try:
        state = torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=False, check_hash=True,
                                                   weights_only=True)
    except Exception as e:                    # network or hash errors: same promise as offline
        return _not_fetched(name, url, f"{type(e).__name__}: {e}")
    return state, url


def _fetch_huggingface(name: str) -> tuple[dict[str, torch.Tensor] | None, str]:
    repo = HF_REPOS[name]
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        return _not_fetched(name, f"hf://{repo}", "the huggingface_hub package is not installed")
    try:                                      # the local cache first: works offline
        path = hf_hub_download(repo, "pytorch_model.bin", local_files_only=True)
    except Exception:
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
        if _offline(hub=True):
            return _not_fetched(name, f"hf://{repo}", "WSSS_OFFLINE or HF_HUB_OFFLINE is set")
        if not _reachable(endpoint):
            return _not_fetched(name, f"hf://{repo}", "host unreachable")
        try:
            path = hf_hub_download(repo, "pytorch_model.bin")
        except Exception as e:
            return _not_fetched(name, f"hf://{repo}", f"{type(e).__name__}: {e}")
    return read_state_dict(path), f"hf://{repo}"
