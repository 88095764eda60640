"""Convolutional encoder/decoder shapes, and the two upsamplings of seeds 000 and 003."""
import pytest
import torch
import torch.nn.functional as F

from pyro_vae.models.conv import ConvDecoder, ConvEncoder, _upsample


@pytest.mark.parametrize("event", [(1, 28, 28), (3, 32, 32)])
@pytest.mark.parametrize("upsample", ["transposed", "pixel_shuffle"])
@pytest.mark.parametrize("params", [1, 2])
def test_shapes_with_particle_and_batch_dimensions(event, upsample, params):
    event = torch.Size(event)
    enc, dec = ConvEncoder(event, 10, channels=8), ConvDecoder(5, event, 8, params_per_pixel=params, upsample=upsample)
    assert enc(torch.rand(4, *event)).shape == (4, 10)
    out = dec(torch.randn(3, 4, 5))  # (particles, batch, Z)
    assert out.shape == (3, 4, *event) if params == 1 else (3, 4, params, *event)


def test_bad_image_size_is_refused():
    with pytest.raises(ValueError, match="divisible by 4"):
        ConvEncoder(torch.Size([1, 30, 30]), 4)


def test_the_pixel_shuffle_upsampling_is_a_convolution_then_depth_to_space():
    """Seed 003's deconvolution by depth-to-space, against a hand-written rearrangement (not torch's PixelShuffle):
    the block's 3x3 convolution makes 4 C' channels, and output pixel (2i + a, 2j + b) of channel c is its channel
    4c + 2a + b at (i, j)."""
    up = _upsample(3, 2, "pixel_shuffle")  # (B, 3, h, w) -> (B, 2, 2h, 2w)
    x = torch.randn(2, 3, 5, 4)
    out = up(x)
    assert out.shape == (2, 2, 10, 8)
    conv = up[0]
    assert conv.out_channels == 4 * 2 and conv.kernel_size == (3, 3) and conv.stride == (1, 1)
    y = F.conv2d(x, conv.weight, conv.bias, padding=1)  # (2, 8, 5, 4): the same kernel, by hand
    by_hand = torch.empty(2, 2, 10, 8)
    for c in range(2):
        for a in range(2):
            for b in range(2):
                by_hand[:, c, a::2, b::2] = y[:, 4 * c + 2 * a + b]
    torch.testing.assert_close(out, by_hand)


def test_transposed_convolution_is_the_adjoint_of_the_strided_convolution():
    up = _upsample(3, 2, "transposed")  # (B, 3, h, w) -> (B, 2, 2h, 2w)
    x, y = torch.randn(1, 2, 8, 8), torch.randn(1, 3, 4, 4)
    down = F.conv2d(x, up.weight, stride=2, padding=1)  # the strided convolution with the same kernel
    lhs = (up(y) - up.bias[:, None, None]) * x
    assert lhs.sum().item() == pytest.approx((y * down).sum().item(), rel=1e-4)
