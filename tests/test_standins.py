"""The stand-in pretrained backbones (wsss.models.standins) and the ceiling network (MaskSupervised)."""
import json
import shutil

import numpy as np
import pytest
import torch

from wsss.data.synthetic import PROFILES, STREAM_VERSION, render_image
from wsss.methods.baselines import MaskSupervised, mask_predictor
from wsss.models import build_backbone
from wsss.models import standins
from wsss.models.pretrained import read_state_dict


@pytest.mark.parametrize("name", standins.TINY)
def test_committed_standins_match_their_records(name):
    path = standins.weights(name, build=False)
    rec = standins.record(name)
    assert rec["sha256"] == standins.sha256(path)
    assert rec["backbone"] == name and rec["recipe"]["steps"] >= 1000
    assert "[0, 2, STREAM_VERSION]" in rec["data"] and rec["recipe"]["images"] > PROFILES["quick"].n_train
    assert rec["loss_last"] < rec["loss_first"]
    assert 0.0 < rec["cam_val"]["miou"] < 1.0
    # every tensor of the backbone is in the file (LayerNorms included), and it loads through pretrained="standin"
    model = build_backbone(name, pretrained="standin", output_stride=8)
    state = read_state_dict(path)
    own = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert set(own) <= set(state)
    assert all(torch.equal(own[k], state[k]) for k in own)


def test_a_changed_standin_file_is_refused(tmp_path, monkeypatch):
    for suffix in (".pt", ".json"):
        shutil.copy(standins.COMMITTED / f"mit-tiny{suffix}", tmp_path / f"mit-tiny{suffix}")
    monkeypatch.setattr(standins, "COMMITTED", tmp_path)
    assert standins.weights("mit-tiny", build=False) == tmp_path / "mit-tiny.pt"
    data = bytearray((tmp_path / "mit-tiny.pt").read_bytes())
    data[-100] ^= 0xFF
    (tmp_path / "mit-tiny.pt").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="mit-tiny.pt does not match the sha256"):
        standins.weights("mit-tiny", build=False)
    (tmp_path / "mit-tiny.pt").unlink()
    with pytest.raises(FileNotFoundError, match="--build mit-tiny"):
        standins.weights("mit-tiny", build=False)


def test_unknown_or_unbuilt_standins_say_so(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="not a known backbone"):
        standins.weights("resnet-huge")
    monkeypatch.setenv("WSSS_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no stand-in for resnet18"):
        standins.weights("resnet18", build=False)


def test_the_classification_set_draws_from_a_stream_no_split_uses():
    data = standins.ClassificationSet(4, benchmark="smoke", seed=0, progress=False)
    for offset in (0, 1):                         # the benchmark's train and val streams of the same seed
        rng = np.random.default_rng([0, offset, STREAM_VERSION])
        split_first = render_image(rng, PROFILES["smoke"])[0]
        assert not np.array_equal(split_first.transpose(2, 0, 1), data.images[0])
    again = standins.ClassificationSet(4, benchmark="smoke", seed=0, progress=False)
    assert np.array_equal(again.images, data.images)          # deterministic
    sample = data[0]
    assert sample["labels"].shape == (6,) and sample["labels"].sum() >= 1
    present = set(np.unique(data.masks[0])) - {0, 255}
    assert {int(c) for c in present} == {i + 1 for i in np.flatnonzero(sample["labels"].numpy())}


def test_build_writes_weights_and_a_record(tmp_path):
    recipe = standins.Recipe(benchmark="smoke", images=16, steps=3, batch_size=4, crop=40, warmup=1)
    torch.manual_seed(7)
    before = torch.random.get_rng_state(), np.random.get_state()[1].copy()
    rec = standins.build_standin("mit-tiny", recipe=recipe, out=tmp_path, device="cpu", progress=False)
    assert torch.equal(before[0], torch.random.get_rng_state())           # the caller's streams are untouched
    assert np.array_equal(before[1], np.random.get_state()[1])
    assert not list(tmp_path.glob("*.tmp"))
    assert (tmp_path / "mit-tiny.pt").is_file()
    assert json.loads((tmp_path / "mit-tiny.json").read_text())["sha256"] == standins.sha256(tmp_path / "mit-tiny.pt")
    assert rec["recipe"]["steps"] == 3 and rec["threads"] >= 1 and rec["cam_val"] is None
    state = read_state_dict(tmp_path / "mit-tiny.pt")
    assert any("norm" in k for k in state)                     # the LayerNorms are part of the stand-in


def test_the_cli_refuses_to_replace_a_committed_standin(capsys, monkeypatch):
    def no_training(*a, **k):
        raise AssertionError("nothing may be trained before every name is checked")
    monkeypatch.setattr(standins, "build_standin", no_training)
    with pytest.raises(SystemExit):          # the second name is refused before the first one is trained
        standins.main(["--build", "resnet18", "mit-tiny"])
    assert "--force" in capsys.readouterr().err


def test_a_cache_file_without_its_record_is_built_again(tmp_path, monkeypatch):
    monkeypatch.setenv("WSSS_CACHE", str(tmp_path))
    (tmp_path / "standins").mkdir()
    (tmp_path / "standins" / "resnet18.pt").write_bytes(b"half-written")
    built = []

    def fake_build(name, **kw):
        built.append(name)
        path, rec = standins.files(name)
        torch.save({"w": torch.zeros(1)}, path)
        rec.write_text(json.dumps({"recipe_version": standins.RECIPE_VERSION, "sha256": standins.sha256(path)}))
    monkeypatch.setattr(standins, "build_standin", fake_build)
    assert standins.weights("resnet18") == tmp_path / "standins" / "resnet18.pt"
    assert built == ["resnet18"]
    assert standins.record("resnet18")["recipe_version"] == standins.RECIPE_VERSION



@pytest.mark.parametrize("head", MaskSupervised.HEADS)
def test_mask_supervised_ceiling_learns_the_masks(head):
    torch.manual_seed(0)
    model = MaskSupervised("resnet-tiny", 3, head=head, output_stride=8, channels=8)
    images = torch.randint(0, 255, (2, 3, 32, 32), dtype=torch.uint8)
    masks = torch.zeros(2, 32, 32, dtype=torch.int64)
    masks[:, 8:24, 8:24] = 2
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(15):
        loss = model({"image": images, "mask": masks})["loss"]
        first = first if first is not None else loss.item()
        opt.zero_grad(); loss.backward(); opt.step()
    assert loss.item() < first
    model.eval()
    pred = mask_predictor(model)({"image": images})["seg"]
    assert pred.shape == (2, 32, 32)
    with pytest.raises(ValueError, match="only 'seg'"):
        mask_predictor(model, ["seg + CRF"])
    with pytest.raises(ValueError, match="head='mlp'"):
        MaskSupervised("resnet-tiny", 3, head="mlp")
