"""Lossless compression with a trained VAE: bits-back coding with ANS (Townsend et al. 2019).

For each image x, on one ANS stack:  pop z ~ q(z | x)  (decoding takes bits off the stack),
push x with p(x | z), push z with p(z). The net cost is -log p(x | z) - log p(z) + log q(z | x):
on average the -ELBO, in bits. Decoding runs the steps backwards (pop z with p(z), pop x with
p(x | z), push z back with q(z | x)) and returns the images in reverse order and, at the end, the
stack exactly as it started: the few random words that seeded it are the one-off start-up cost.

Continuous latents are discretized into B buckets per dimension of equal mass under the N(0, 1)
prior (so p(z) is uniform over buckets); q(z | x) is its Gaussian's mass in each bucket, and the
decoder reads each bucket's centre. Needs the Bernoulli likelihood, the N(0, I) prior and the
diagonal-Gaussian guide.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pyro_vae.guides import DiagonalNormalGuide
from pyro_vae.models import BernoulliLikelihood, StandardNormalPrior

from pyro_vae.inference.errors import UserError


SEED_WORDS, SEED = 32, 0


def initial_words() -> np.ndarray:
    """The random words the stack starts from (the first z is popped from them); decoding ends on them."""
    return np.random.default_rng(SEED).integers(1, 2 ** 32, SEED_WORDS, dtype=np.uint32)


@dataclass
class BitsBackResult:
    words: np.ndarray  # the stack after coding, uint32
    initial_bits: int
    final_bits: int
    num_images: int

    @property
    def net_bits_per_image(self) -> float:
        return (self.final_bits - self.initial_bits) / self.num_images


class BitsBackCoder:
    """Codes binary images with a VAE (model, guide); ``bucket_bits`` sets B = 2^bucket_bits."""

    def __init__(self, model, guide, bucket_bits: int = 12):
        if not (isinstance(model.likelihood, BernoulliLikelihood) and type(model.prior) is StandardNormalPrior
                and isinstance(guide, DiagonalNormalGuide)):
            raise UserError("bits-back coding needs a VAE with the bernoulli likelihood, the normal prior and the "
                            f"diagonal_normal guide (this run: {type(model.likelihood).__name__}, "
                            f"{type(model.prior).__name__}, {type(guide).__name__})")
        self.model, self.guide, self.buckets = model, guide, 2 ** bucket_bits
        normal = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0)
        levels = torch.arange(self.buckets + 1, dtype=torch.float64) / self.buckets
        self.edges = normal.icdf(levels)  # -inf, ..., +inf
        self.centres = normal.icdf((torch.arange(self.buckets, dtype=torch.float64) + 0.5) / self.buckets)

    def _posterior_table(self, x: torch.Tensor) -> np.ndarray:
        """(Z, B) masses of q(z_j | x) in each bucket."""
        with torch.no_grad():
            loc, scale = (t.double().squeeze(0).cpu() for t in self.guide.posterior_params(x.unsqueeze(0)))
        cdf = torch.special.ndtr((self.edges.unsqueeze(0) - loc.unsqueeze(1)) / scale.unsqueeze(1))
        return (cdf[:, 1:] - cdf[:, :-1]).clamp(min=0).numpy()

    def _pixel_probabilities(self, buckets: np.ndarray) -> np.ndarray:
        z = self.centres[torch.from_numpy(buckets.astype(np.int64))].float().unsqueeze(0)
        with torch.no_grad():
            logits = self.model.decode(z.to(next(self.model.parameters()).device)).flatten().double().cpu()
        return torch.sigmoid(logits).numpy()

    def _models(self):
        import constriction

        m = constriction.stream.model
        return m.Categorical(perfect=False), m.Uniform(self.buckets), m.Bernoulli(perfect=False)

    def encode(self, images: torch.Tensor) -> BitsBackResult:
        import constriction

        coder = constriction.stream.stack.AnsCoder(initial_words())
        initial = coder.num_bits()
        posterior, uniform, bernoulli = self._models()
        for x in images:
            if not torch.all((x == 0) | (x == 1)):
                raise UserError("bits-back coding takes binary images (0/1 pixels)")
            buckets = coder.decode(posterior, self._posterior_table(x))  # pop z ~ q(z | x)
            pixels = x.flatten().cpu().numpy().astype(np.int32)
            coder.encode_reverse(pixels, bernoulli, self._pixel_probabilities(buckets))  # push x ~ p(x | z)
            coder.encode_reverse(buckets, uniform)  # push z ~ p(z)
        return BitsBackResult(coder.get_compressed(), initial, coder.num_bits(), len(images))

    def decode(self, words: np.ndarray, num_images: int, event_shape: torch.Size) -> torch.Tensor:
        import constriction

        coder = constriction.stream.stack.AnsCoder(words)
        posterior, uniform, bernoulli = self._models()
        out = []
        latent = self.model.latent_dim
        for _ in range(num_images):
            buckets = coder.decode(uniform, latent)  # pop z with p(z)
            pixels = coder.decode(bernoulli, self._pixel_probabilities(buckets))  # pop x with p(x | z)
            x = torch.from_numpy(pixels.astype(np.float32)).reshape(event_shape)
            coder.encode_reverse(buckets, posterior, self._posterior_table(x))  # give the bits back
            out.append(x)
        self.remaining = coder.get_compressed()
        return torch.stack(out[::-1])


PAYLOAD = "<u4"  # five of them: N, bucket bits, C, H, W; then the ANS words


def encode_lossless(coder: BitsBackCoder, images: torch.Tensor) -> tuple[bytes, BitsBackResult]:
    """The payload of a lossless file (``pyro_vae.inference.coding.container`` wraps it): uint32 N | bucket bits |
    C | H | W | the stack's words."""
    result = coder.encode(images)
    c, h, w = images.shape[1:]
    header = np.array([images.shape[0], int(np.log2(coder.buckets)), c, h, w], dtype=PAYLOAD).tobytes()
    return header + result.words.astype("<u4").tobytes(), result


def decode_lossless(model, guide, payload: bytes, event_shape=None, name="the file") -> torch.Tensor:
    """The images of a payload from ``encode_lossless``, checked: its sizes must be those of this model, and
    the decoder must end on exactly the stack's initial seed words (anything else means damage)."""
    from pyro_vae.inference.coding.container import damaged, first_line
    from pyro_vae.inference.memory import require_memory

    if len(payload) < 20 or len(payload) % 4:
        raise damaged(name, f"its payload of {len(payload)} bytes is not a header and whole 32-bit words")
    count, bucket_bits, c, h, w = (int(v) for v in np.frombuffer(payload[:20], dtype=PAYLOAD))
    if event_shape is not None and (c, h, w) != tuple(event_shape):
        raise UserError(f"{name} holds images of shape {c}x{h}x{w}; this run's model takes "
                        f"{'x'.join(map(str, event_shape))}: decompress it with the run that wrote it")
    if not 1 <= bucket_bits <= 16 or count < 1:
        raise damaged(name, f"it states {count} images in 2^{bucket_bits} buckets")
    require_memory(8 * count * c * h * w, f"decoding {count} images of {c}x{h}x{w}")  # a list, then its stack
    words = np.frombuffer(payload[20:], dtype="<u4").astype(np.uint32)
    coder = BitsBackCoder(model, guide, bucket_bits)
    try:
        images = coder.decode(words, count, torch.Size([c, h, w]))
    except (ValueError, AssertionError) as err:
        raise damaged(name, f"the ANS decoder refused it ({first_line(err)})") from None
    if not np.array_equal(coder.remaining, initial_words()):
        raise damaged(name, "the bits-back decoder did not end on the stack's initial words")
    return images
