"""FlowInv's distribution: an image-conditioned RealNVP flow over transformation parameters.

Sampling (the generative direction) starts from a per-image mixture of diagonal Gaussians
z0 ~ sum_k pi_k(e) N(mu_k(e), diag sigma_k(e)^2), whose parameters are learned constants plus
a linear map of the image embedding e, and pushes z0 through K blocks

    affine coupling (RealNVP, its scale and shift an MLP of the kept half and e)
    -> fixed permutation -> 6 tanh(z / 6)

and a final a tanh(z / a), so every parameter lies in (-a, a) with a <= 1. The log-density
of a sample follows the change of variables,

    log q(w | e) = log p0(z0 | e) - sum_layers log |det dz_out / dz_in|,

and every layer has an exact inverse, so `log_prob` evaluates the density of any w.
Samples are reparameterised: the mixture component is drawn by a straight-through hard
Gumbel-softmax (exact categorical samples forward, soft gradients back), the Gaussian noise
by location-scale, so the task loss reaches the flow, the base and the embedding.

With one parameter (rotation) a coupling has nothing to keep: it then scales and shifts its
one dimension by an MLP of e alone, the conditional per-layer scale and bias the paper
describes; with more parameters it keeps floor(d/2) of them (and conditions on e as well).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

INNER_TANH = 6.0  # the soft bound between blocks, 6 tanh(z / 6) (public code)
LOC_BOUND = 3.0  # |mu| of the base components; tanh(3) = 0.995 reaches almost the whole range
LOG_SCALE_BOUNDS = (-6.0, math.log(2.0))  # sigma of a component in [2.5e-3, 2]
_SMALL_INIT = 0.01  # last layers start near zero, so the flow starts near its base (public code)


def log_dtanh(u: Tensor) -> Tensor:
    """log(1 - tanh(u)^2) elementwise, stable for large |u|."""
    return 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))


class MixtureBase(nn.Module):
    """p0(z | e): K diagonal Gaussians with means, log-scales and weights = learned constants + A e.

    `offset` (d,) is added to every mean: where the distribution starts (set by the flow).
    """

    offset: Tensor

    def __init__(self, dim: int, n_modes: int, emb_dim: int, loc_std: float, start_scale: float) -> None:
        super().__init__()
        self.dim, self.n_modes = dim, n_modes
        self.loc = nn.Parameter((torch.rand(n_modes, dim) * 2 - 1) * loc_std)
        self.log_scale = nn.Parameter(torch.full((n_modes, dim), math.log(start_scale)))
        self.logit = nn.Parameter(torch.zeros(n_modes))
        self.project = nn.Linear(emb_dim, 2 * n_modes * dim + n_modes)
        with torch.no_grad():
            self.project.weight.mul_(_SMALL_INIT)
            self.project.bias.mul_(_SMALL_INIT)
        self.register_buffer("offset", torch.zeros(dim))

    def params(self, e: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Per-row means (B, K, d), log-scales (B, K, d) and log-weights (B, K)."""
        kd = self.n_modes * self.dim
        p = self.project(e)
        loc = (self.loc + self.offset + p[:, :kd].view(-1, self.n_modes, self.dim)).clamp(-LOC_BOUND, LOC_BOUND)
        log_scale = (self.log_scale + p[:, kd:2 * kd].view(-1, self.n_modes, self.dim)).clamp(*LOG_SCALE_BOUNDS)
        log_w = torch.log_softmax(self.logit + p[:, 2 * kd:], -1)
        return loc, log_scale, log_w

    def rsample(self, e: Tensor, tau: float) -> Tensor:
        """One reparameterised draw per row of e: (B, d)."""
        loc, log_scale, log_w = self.params(e)
        pick = F.gumbel_softmax(log_w, tau=tau, hard=True).unsqueeze(-1)  # (B, K, 1), one-hot forward
        eps = torch.randn(e.shape[0], 1, self.dim, device=e.device, dtype=loc.dtype)
        return (pick * (loc + log_scale.exp() * eps)).sum(1)

    def log_prob(self, z: Tensor, e: Tensor) -> Tensor:
        """log p0(z | e) per row, (B,)."""
        loc, log_scale, log_w = self.params(e)
        u = (z.unsqueeze(1) - loc) / log_scale.exp()
        comp = -0.5 * u.pow(2).sum(-1) - log_scale.sum(-1) - 0.5 * self.dim * math.log(2 * math.pi)
        return torch.logsumexp(log_w + comp, -1)


class Bijection(nn.Module):
    """A layer of the flow: forward and inverse maps, each with its log |det Jacobian| per row."""

    def forward(self, z: Tensor, e: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def inverse(self, y: Tensor, e: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


class Coupling(Bijection):
    """RealNVP affine coupling: z[:, k:] -> z[:, k:] exp(s) + t, (t, s) = MLP([z[:, :k], e]), k = floor(d/2)."""

    def __init__(self, dim: int, emb_dim: int, width: int) -> None:
        super().__init__()
        self.keep = dim // 2
        moved = dim - self.keep
        self.net = nn.Sequential(nn.Linear(self.keep + emb_dim, width), nn.ReLU(), nn.Linear(width, 2 * moved))
        last = self.net[-1]
        assert isinstance(last, nn.Linear)
        with torch.no_grad():
            last.weight.mul_(_SMALL_INIT)
            last.bias.mul_(_SMALL_INIT)

    def _shift_log_scale(self, kept: Tensor, e: Tensor) -> tuple[Tensor, Tensor]:
        p = self.net(torch.cat([kept, e], -1))
        return p[:, 0::2], p[:, 1::2]

    def forward(self, z: Tensor, e: Tensor) -> tuple[Tensor, Tensor]:
        kept, moved = z[:, :self.keep], z[:, self.keep:]
        t, s = self._shift_log_scale(kept, e)
        return torch.cat([kept, moved * s.exp() + t], -1), s.sum(-1)

    def inverse(self, y: Tensor, e: Tensor) -> tuple[Tensor, Tensor]:
        kept, moved = y[:, :self.keep], y[:, self.keep:]
        t, s = self._shift_log_scale(kept, e)
        return torch.cat([kept, (moved - t) * (-s).exp()], -1), -s.sum(-1)


class Permute(Bijection):
    """A fixed permutation of the parameters (swap for d = 2, random for d > 2); log det 0."""

    perm: Tensor
    inv: Tensor

    def __init__(self, dim: int) -> None:
        super().__init__()
        perm = torch.randperm(dim) if dim > 2 else torch.arange(dim - 1, -1, -1)
        self.register_buffer("perm", perm)
        self.register_buffer("inv", torch.argsort(perm))

    def forward(self, z: Tensor, e: Tensor) -> tuple[Tensor, Tensor]:
        return z[:, self.perm], z.new_zeros(z.shape[0])

    def inverse(self, y: Tensor, e: Tensor) -> tuple[Tensor, Tensor]:
        return y[:, self.inv], y.new_zeros(y.shape[0])


class Tanh(Bijection):
    """z -> a tanh(z / a): bounds the parameters to (-a, a)."""

    def __init__(self, bound: float) -> None:
        super().__init__()
        self.bound = float(bound)

    def forward(self, z: Tensor, e: Tensor) -> tuple[Tensor, Tensor]:
        u = z / self.bound
        return self.bound * torch.tanh(u), log_dtanh(u).sum(-1)

    def inverse(self, y: Tensor, e: Tensor) -> tuple[Tensor, Tensor]:
        u = torch.atanh((y / self.bound).clamp(-1 + 1e-6, 1 - 1e-6))
        return self.bound * u, -log_dtanh(u).sum(-1)


class ConditionalFlow(nn.Module):
    """q(w | e): `MixtureBase` pushed through `n_layers` blocks of coupling, permutation and tanh.

    `out_bound` a <= 1 is the final tanh's bound; `start` (d,), where the initial flow's base
    means are centred, in parameter space (default: w = 0). `rsample` draws (w, log q(w | e)); `log_prob`
    and `inverse` evaluate any w, so the density can be checked against the change of variables.
    """

    def __init__(self, dim: int, emb_dim: int, n_layers: int, width: int, n_modes: int, loc_std: float,
                 start_scale: float, out_bound: float = 1.0, gumbel_tau: float = 0.1,
                 start: Tensor | None = None) -> None:
        super().__init__()
        self.dim, self.gumbel_tau = dim, gumbel_tau
        self.base = MixtureBase(dim, n_modes, emb_dim, loc_std, start_scale)
        layers: list[Bijection] = []
        for _ in range(n_layers):
            layers += [Coupling(dim, emb_dim, width), Permute(dim), Tanh(INNER_TANH)]
        layers.append(Tanh(out_bound))
        self.layers = nn.ModuleList(layers)
        if start is not None:  # the base point that the initial flow maps to `start` (permutations included)
            with torch.no_grad():
                z, _ = self.inverse(start.float().view(1, dim), torch.zeros(1, emb_dim))
                self.base.offset.copy_(z[0])

    def bijections(self) -> list[Bijection]:
        """The layers in sampling order."""
        return [layer for layer in self.layers if isinstance(layer, Bijection)]

    def push(self, z: Tensor, e: Tensor) -> tuple[Tensor, Tensor]:
        """Base point(s) z (B, d) -> parameters w (B, d) and sum log |det dw/dz| (B,)."""
        log_det = z.new_zeros(z.shape[0])
        for layer in self.bijections():
            z, ld = layer(z, e)
            log_det = log_det + ld
        return z, log_det

    def inverse(self, w: Tensor, e: Tensor) -> tuple[Tensor, Tensor]:
        """Parameters w (B, d) -> base points z (B, d) and sum log |det dz/dw| (B,)."""
        log_det = w.new_zeros(w.shape[0])
        for layer in reversed(self.bijections()):
            w, ld = layer.inverse(w, e)
            log_det = log_det + ld
        return w, log_det

    def rsample(self, e: Tensor) -> tuple[Tensor, Tensor]:
        """One reparameterised draw per row of e: w (B, d) and log q(w | e) (B,)."""
        z = self.base.rsample(e, self.gumbel_tau)
        log_p0 = self.base.log_prob(z, e)
        w, log_det = self.push(z, e)
        return w, log_p0 - log_det

    def log_prob(self, w: Tensor, e: Tensor) -> Tensor:
        """log q(w | e) (B,) of given parameters, through the inverse."""
        z, log_det = self.inverse(w, e)
        return self.base.log_prob(z, e) + log_det


class EmbeddingNet(nn.Module):
    """The conditioning CNN: images in [0, 1] -> embedding e (B, emb_dim).

    The public code's 5-layer CNN without BatchNorm: convolutions of c, 2c, 4c, 8c channels
    (the last three each followed by 2x2 max-pooling), a global max-pool and a linear layer;
    the global pool replaces its fixed final pool so any input size works.
    """

    def __init__(self, in_channels: int, width: int, emb_dim: int) -> None:
        super().__init__()
        c = width
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, c, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c, 2 * c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * c, 4 * c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(4 * c, 8 * c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(8 * c, emb_dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(2 * x - 1)
