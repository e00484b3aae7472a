"""TSCD's Self Correspondence Distillation (issue 12 groundwork) and the two-view pieces RML shares."""
import pytest
import torch

from wsss.losses import equivariance_l1
from wsss.methods.tscd import correspondence, sample_points, scd_loss
from wsss.ops import rescaled_view


def test_correspondence_is_the_cosine_of_every_pair():
    a = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]])
    b = torch.tensor([[[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0]]])
    m = correspondence(a, b)
    s = 2 ** -0.5
    assert torch.allclose(m, torch.tensor([[[1.0, 0.0, -1.0], [s, s, -s]]]), atol=1e-6)


def test_scd_loss_sign_and_no_gradient_into_the_cam_target():
    torch.manual_seed(0)
    cam_1 = torch.rand(1, 3, 8, 8, requires_grad=True)
    cam_2 = torch.rand(1, 3, 4, 4, requires_grad=True)
    seg_1 = torch.randn(1, 4, 8, 8, requires_grad=True)
    seg_2 = torch.randn(1, 4, 4, 4, requires_grad=True)
    p1, p2 = sample_points(1, 5), sample_points(1, 5)
    loss = scd_loss(cam_1, cam_2, seg_1, seg_2, p1, p2)
    loss.backward()
    assert cam_1.grad is None and cam_2.grad is None                  # M is the target, no gradient
    assert seg_1.grad.abs().sum() > 0 and seg_2.grad.abs().sum() > 0
    # a gradient step on the segmentation logits lowers the loss (pairs with M > 0 are pulled together)
    with torch.no_grad():
        stepped = scd_loss(cam_1, cam_2, seg_1 - 10 * seg_1.grad, seg_2 - 10 * seg_2.grad, p1, p2)
    assert stepped < loss
    # identical segmentation features everywhere: S = 1, and the loss is minus the mean of M (centring by
    # the row mean and adding back the global mean keeps the mean); M from min-max CAMs sampled by hand
    flat_1, flat_2 = torch.ones(1, 4, 8, 8), torch.ones(1, 4, 4, 4)
    same = scd_loss(cam_1.detach(), cam_2.detach(), flat_1, flat_2, p1, p2)

    def sampled(cam, p):
        c = cam.detach()
        c = (c - c.amin((2, 3), keepdim=True)) / (c.amax((2, 3), keepdim=True) - c.amin((2, 3), keepdim=True) + 1e-5)
        return torch.nn.functional.grid_sample(c, p, align_corners=False).flatten(2).transpose(1, 2)

    m = correspondence(sampled(cam_1, p1), sampled(cam_2, p2))
    assert abs(same.item() + m.mean().item()) < 1e-5


def test_second_view_and_equivariance():
    images = torch.randint(0, 255, (2, 3, 40, 50), dtype=torch.uint8)
    view = rescaled_view(images, 0.3)
    assert view.shape == (2, 3, 12, 15) and view.dtype == torch.uint8
    maps = torch.rand(2, 3, 10, 10)
    small = torch.nn.functional.interpolate(maps, size=(3, 3), mode="bilinear", align_corners=False)
    assert equivariance_l1(maps, small).item() < 1e-6
    assert equivariance_l1(maps, small + 0.5).item() > 0.49


def _batch(tiny_benchmark, n=2, crop=48):
    from wsss.data import build_dataset, collate
    from wsss.data.transforms import TrainTransform

    ds = build_dataset("synthetic", tiny_benchmark, "train_aug", transform=TrainTransform(crop, scale=(1.3, 1.5)))
    return ds.num_classes, collate([ds[i] for i in range(n)])


SMALL = dict(channels=16, output_stride=8, dilations=(1, 2), radius=2, samples=4, cls_only=2)


def test_tscd_step_switches_its_terms_and_trains_every_branch(tiny_benchmark):
    from wsss.methods.tscd import TSCD

    C, batch = _batch(tiny_benchmark)
    torch.manual_seed(0)
    full = TSCD("mit-tiny", C, **SMALL).train()
    early = full(batch, step=1)
    assert set(early) == {"loss", "cls"}                                    # the shared warm-up: L_cls alone
    out = full(batch, step=2)
    assert {"seg", "aux", "scd", "equ", "reg"} <= out.keys() and torch.isfinite(out["loss"])
    terms = 0.1 * (out["seg"] + out["aux"] + out["scd"] + out["equ"]) + 0.01 * out["reg"] + out["cls"]
    assert torch.allclose(out["loss"].detach(), terms, atol=1e-5)           # Eq. (15) with the paper's lambdas
    out["loss"].backward()
    assert full.net.attn_proj.weight.grad.abs().sum() > 0 and full.net.decoder.classifier.weight.grad.abs().sum() > 0
    assert not full.net.symmetric and full.walk_from is None               # attention maps as they are; no walk
    base = TSCD("mit-tiny", C, refiner=None, scd=False, aux=False, equ=False, **SMALL).train()
    assert set(base(batch, step=2)) == {"loss", "cls", "seg", "reg", "ignored"}
    resnet = TSCD("resnet-tiny", C, **SMALL).train()                       # no attention: no L_aux
    assert "aux" not in resnet(batch, step=2) and not resnet.aux
    with pytest.raises(TypeError, match="symmetric"):
        TSCD("mit-tiny", C, symmetric=True)


def test_equivariance_term_has_a_gradient_into_the_encoder(tiny_benchmark):
    """The released code computes L_equ without gradient; Eq. (12) as implemented has one, on min-max CAMs:
    scaling a CAM does not change it."""
    from wsss.methods.tscd import TSCD, equ_loss

    cam = torch.rand(1, 3, 8, 8)
    small = torch.nn.functional.interpolate(cam, size=(3, 3), mode="bilinear", align_corners=False)
    assert abs(equ_loss(cam, 5 * small).item() - equ_loss(cam, small).item()) < 1e-4

    C, batch = _batch(tiny_benchmark)
    torch.manual_seed(0)
    model = TSCD("mit-tiny", C, refiner=None, scd=False, aux=False, reg=False, **SMALL).train()
    model(batch, step=2)["equ"]                                            # the term is reported ...
    model.zero_grad()
    out = model.net(batch["image"], with_attn=False)
    view = model.net(rescaled_view(batch["image"], 0.3), with_attn=False)
    equ_loss(out["cam"], view["cam"]).backward()                           # ... and differentiable in the encoder
    assert model.net.encoder.patch_embeds[0].proj.weight.grad.abs().sum() > 0


def test_reg_gate_follows_the_public_code():
    from wsss.data.folder import IGNORE
    from wsss.methods.tscd import reg_gate

    probs = torch.tensor([[[[0.9, 0.5, 0.2]], [[0.1, 0.5, 0.8]]]])          # (1, 2, 1, 3)
    label = torch.tensor([[[0, IGNORE, 1]]])
    valid = torch.tensor([[[True, True, False]]])
    gate = reg_gate(probs, label, valid)
    assert torch.allclose(gate, torch.tensor([[[0.1, 1.0, 0.0]]]))        # 1 - max p; 1 if ignored; 0 outside the crop


def test_reg_weight_is_the_public_codes_per_image_sum_converted_to_a_mean():
    from wsss.methods.tscd import REG_WEIGHT
    from wsss.refine.crf import dense_crf_loss

    torch.manual_seed(0)
    images = torch.randint(0, 255, (2, 16, 16, 3), dtype=torch.uint8)
    probs = torch.rand(2, 3, 16, 16).softmax(1)
    summed = dense_crf_loss(images, probs, sigma_xy=10, scale=1.0, reduction="sum", kernel="exact")
    mean = dense_crf_loss(images, probs, sigma_xy=10, scale=1.0, reduction="mean", kernel="exact")
    assert torch.allclose(1e-7 * summed * (256 * 256) / (16 * 16), REG_WEIGHT * mean)


def test_timing_mode_reuses_labels_and_samples_and_skips_the_crf_loss(tiny_benchmark):
    from wsss.experiments import step_timing
    from wsss.methods.tscd import TSCD

    C, batch = _batch(tiny_benchmark)
    torch.manual_seed(0)
    model = TSCD("mit-tiny", C, **SMALL)
    model.timing_network_only = True
    first, second = model(batch, step=2), model(batch, step=2)
    assert "reg" not in first and set(model._reused) == {"labels", "pairs", "points"}
    assert first["ignored"] == second["ignored"]
    t = step_timing(model, batch, step=2, steps=1, warmup=0)
    assert t["full_ms"] > 0 and not model.timing_network_only


def test_reg_weight_conversion_measures_the_energy_ratio_of_the_same_scenes():
    """L_reg's weight at our size: the per-pixel CRF energy of the same scenes grows with the pixel count when sigma_xy
    is scaled to the image, so the measured ratio sits near (512 / crop)^2 and the weight is 1e-7 x 256^2 x ratio."""
    from wsss.experiments.tscd import reg_weight_conversion

    r = reg_weight_conversion(64, images=2)
    assert r["sigma_paper"] > r["sigma_ours"] and r["e_paper"] > r["e_ours"] > 0
    assert 0.6 * 64 < r["ratio"] < 1.6 * 64
    assert r["weight"] == pytest.approx(1e-7 * 256 ** 2 * r["ratio"]) and r["naive_weight"] == pytest.approx(1e-7 * 256 ** 2)
    with pytest.raises(ValueError, match="crop_px"):
        reg_weight_conversion(64, crop_px=4)
