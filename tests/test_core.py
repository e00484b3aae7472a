"""CAM, evaluation, the dense-CRF wrapper and the losses, checked against hand computations."""
import numpy as np
import pytest
import torch
import torch.nn as nn

from wsss.cam import add_background, cam_to_label, cam_to_probs, multiscale_cam, normalize_cam
from wsss.data.transforms import normalize
from wsss.evaluate import ConfusionMatrix, evaluate, miou, per_class_table
from wsss.losses import multilabel_soft_margin, segmentation_ce
from wsss.models.heads import CAMNet, DeepLabV3Plus
from wsss.refine import dense_crf, dense_crf_batch


class OneConv(nn.Module):
    """A stand-in backbone: one 3x3 conv at stride 1, so CAMs can be computed by hand."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.out_channels = [4]

    def forward(self, x):
        return [torch.relu(self.conv(x))]


def test_cam_is_the_classifier_applied_at_every_position():
    torch.manual_seed(0)
    net = CAMNet(OneConv(), num_foreground=3)
    x = torch.randn(2, 3, 8, 8)
    out = net(x)
    f = out["features"][-1]                                            # (B, D, h, w)
    w = net.classifier.weight[:, :, 0, 0]                              # (K, D)
    by_hand = torch.einsum("kd,bdhw->bkhw", w, f)
    assert torch.allclose(out["cam"], by_hand, atol=1e-6)
    assert torch.allclose(out["logits"], by_hand.mean(dim=(2, 3)), atol=1e-6)


def test_multiscale_cam_is_normalised_and_masked_by_tags():
    torch.manual_seed(0)
    net = CAMNet(OneConv(), num_foreground=3).eval()
    images = torch.randint(0, 255, (2, 3, 8, 8), dtype=torch.uint8)
    labels = torch.tensor([[1.0, 0, 1], [0, 1, 0]])
    cam = multiscale_cam(net, images, labels, scales=(1.0, 0.5), flip=True)
    assert cam.shape == (2, 3, 8, 8) and cam.min() >= 0 and cam.max() <= 1
    assert torch.all(cam[0, 1] == 0) and torch.all(cam[1, 0] == 0) and torch.all(cam[1, 2] == 0)
    for b, k in ((0, 0), (0, 2), (1, 1)):
        if cam[b, k].max() > 0:
            assert cam[b, k].max() == pytest.approx(1.0, abs=1e-3)
    # single scale, no flip: ReLU'd CAM over its max, by hand
    one = multiscale_cam(net, images, None, scales=(1.0,), flip=False)
    raw = torch.relu(net(normalize(images))["cam"])
    assert torch.allclose(one, raw / (raw.amax(dim=(2, 3), keepdim=True) + 1e-5), atol=1e-5)


def test_background_scores_and_pseudo_labels():
    cam = torch.tensor([[[[0.9, 0.1]], [[0.2, 0.05]]]])              # (1, 2, 1, 2)
    assert cam_to_label(cam, threshold=0.3).tolist() == [[[1, 0]]]
    scores = add_background(cam, power=2)
    assert torch.allclose(scores[0, 0, 0], torch.tensor([(1 - 0.9) ** 2, (1 - 0.1) ** 2]))
    probs = cam_to_probs(cam, power=2)
    assert torch.allclose(probs.sum(1), torch.ones(1, 1, 2))
    with pytest.raises(ValueError, match="exactly one"):
        add_background(cam)
    with pytest.raises(ValueError, match="threshold"):
        add_background(cam, threshold=1.5)
    assert normalize_cam(torch.tensor([[[[2.0, -1.0]]]])).flatten().tolist() == pytest.approx([1.0, 0.0], abs=1e-4)


def test_confusion_matrix_miou_by_hand():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 255]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 0, 2]])
    cm = ConfusionMatrix(3)
    cm.update(pred, target)
    # class 0: TP 1, FP 1 (gt 2 -> 0), FN 1 -> 1/3; class 1: TP 2, FP 1 -> 2/3; class 2: TP 1, FN 1 -> 1/2
    assert cm.iou() == pytest.approx([1 / 3, 2 / 3, 1 / 2])
    assert cm.miou() == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert miou([pred], [target], 3) == pytest.approx(cm.miou())
    table = per_class_table({"m": cm}, ["bg", "a", "b"])
    assert table.loc["m", "mIoU"] == pytest.approx(50.0, abs=0.1)
    absent = ConfusionMatrix(4)
    absent.update(pred, target)
    assert np.isnan(absent.iou()[3]) and absent.miou() == pytest.approx(cm.miou())
    with pytest.raises(ValueError, match="shape"):
        cm.update(pred[:1], target)
    with pytest.raises(ValueError, match="outside"):
        cm.update(pred + 5, target)


def test_dense_crf_snaps_to_colour_edges():
    image = np.zeros((24, 32, 3), np.uint8)
    image[:, 16:] = 220
    probs = np.full((2, 24, 32), 0.5, np.float32)
    probs[0, :, :8], probs[1, :, :8] = 0.8, 0.2      # confident left  -> class 0
    probs[0, :, 24:], probs[1, :, 24:] = 0.2, 0.8    # confident right -> class 1
    out = dense_crf(image, probs, n_iter=10, gaussian=(3, 3), bilateral=(30, 13, 10))
    assert out.shape == (2, 24, 32) and out.dtype == torch.float32
    assert torch.allclose(out.sum(0), torch.ones(24, 32), atol=1e-4)
    label = out.argmax(0)
    assert (label[:, :16] == 0).all() and (label[:, 16:] == 1).all()   # the undecided middle follows the edge
    batch = dense_crf_batch(np.stack([image, image]), np.stack([probs, probs]))
    assert batch.shape == (2, 2, 24, 32)


@pytest.mark.parametrize("image, probs, err, match", [
    (np.zeros((4, 4, 3), np.float32), np.full((2, 4, 4), 0.5, np.float32), TypeError, "uint8"),
    (np.zeros((4, 4, 3), np.uint8), np.full((2, 4, 5), 0.5, np.float32), ValueError, "does not match"),
    (np.zeros((4, 4, 3), np.uint8), np.full((2, 4, 4), 0.7, np.float32), ValueError, "sum to 1"),
    (np.zeros((4, 4), np.uint8), np.full((2, 4, 4), 0.5, np.float32), ValueError, "H, W, 3"),
])
def test_dense_crf_rejects_bad_input(image, probs, err, match):
    with pytest.raises(err, match=match):
        dense_crf(image, probs)
    with pytest.raises(ValueError, match="backend"):
        dense_crf(np.zeros((4, 4, 3), np.uint8), np.full((2, 4, 4), 0.5, np.float32), backend="gpu-magic")


def test_losses():
    logits = torch.tensor([[2.0, -1.0]])
    labels = torch.tensor([[1.0, 0.0]])
    by_hand = -(torch.log(torch.sigmoid(torch.tensor(2.0))) + torch.log(1 - torch.sigmoid(torch.tensor(-1.0)))) / 2
    assert multilabel_soft_margin(logits, labels) == pytest.approx(by_hand.item(), abs=1e-6)
    seg = torch.randn(1, 3, 2, 2, requires_grad=True)
    assert segmentation_ce(seg, torch.full((1, 2, 2), 255)).item() == 0.0
    target = torch.tensor([[[0, 1], [2, 255]]])
    expected = torch.nn.functional.cross_entropy(seg[..., :].reshape(3, 4).T[:3], torch.tensor([0, 1, 2]))
    assert segmentation_ce(seg, target).item() == pytest.approx(expected.item(), abs=1e-6)


def test_deeplab_head_shapes():
    net = DeepLabV3Plus(OneConvTwo(), num_classes=5, channels=16)
    assert net(torch.randn(2, 3, 16, 16)).shape == (2, 5, 16, 16)


class OneConvTwo(nn.Module):
    """Two levels (stride 1 and 2) for the DeepLab-v3+ head."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 6, 3, stride=2, padding=1)
        self.out_channels = [4, 6]

    def forward(self, x):
        a = self.a(x)
        return [a, self.b(a)]


def test_evaluate_accumulates_one_or_several_predictions(tiny_benchmark):
    from wsss.data import build_dataset

    val = build_dataset("synthetic", tiny_benchmark, "val")
    perfect = evaluate(lambda b: b["mask"], val, batch_size=5)
    labelled = sum(int((val[i]["mask"] != 255).sum()) for i in range(len(val)))      # the void band is not counted
    assert perfect.miou() == 1.0 and perfect.matrix.sum() == labelled and 0.8 * 12 * 48 * 48 < labelled < 12 * 48 * 48
    both = evaluate(lambda b: {"gt": b["mask"], "all background": torch.zeros_like(b["mask"])}, val, batch_size=5)
    assert both["gt"].miou() == 1.0 and both["all background"].iou()[1:].max() == 0.0


def test_label_coverage_counts_what_a_pseudo_label_speaks_for():
    from wsss.evaluate import coverage_summary, label_coverage

    masks = torch.tensor([[[0, 0, 0, 1], [1, 1, 255, 2]]])
    labels = torch.tensor([[[0, 255, 1, 1], [255, 2, 0, 2]]])
    counts = label_coverage(labels, masks)
    assert counts == {"bg": 3, "bg_labelled": 2, "fg": 4, "fg_labelled": 3, "labelled": 5, "correct": 3}
    summary = coverage_summary(counts)
    assert summary["background labelled"] == pytest.approx(2 / 3)
    assert summary["foreground labelled"] == pytest.approx(3 / 4)
    assert summary["labelled pixels correct"] == pytest.approx(3 / 5)
