"""TSCD's Self Correspondence Distillation (issue 12 groundwork) and the two-view pieces RML shares."""
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
