"""The parameterization interface: p(tau; theta) of InstaAug (Section 3.3), given raw parameters theta.

A parameterization says what the raw parameters theta (B, n_raw) of each input mean, and does
everything that depends on that meaning: draw and apply transformations (`sample`), their
entropy (`entropy`), statistics and plotted draws (`inspect`), test-time views (`test_views`).
Where theta comes from (phi(x), a learned vector, a per-class table) is a conditioner's job
(`conditioning.py`), so every parameterization works with every conditioning. The two kinds:
location-related crops (`lrp.LRPParameterization`) and uniform ranges
(`uniform.UniformRanges`: `CropRanges`, `RotationRanges`, `ColorRanges`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from torch import Tensor, nn

from augbench.errors import ConfigError
from augbench.methods import Views

INSPECT_SAMPLES = 8  # sampled crops per input that `inspect` reports ("crop_boxes")


class Parameterization(nn.Module):
    """A family of distributions p(tau; theta) over one kind of transformation.

    Class attributes: `family`, the benchmark family it transforms ("crop", "rotation",
    "color"); `raw_name`, what theta is called in state_dict keys ("logit" for LRP, whose
    raw parameters are logits, "raw" for ranges); `tta_rules`, the test-time view rules
    it supports. A subclass holds no learnable parameters: those are the conditioner's.
    """

    family: str = ""
    raw_name: ClassVar[str] = "raw"
    tta_rules: ClassVar[tuple[str, ...]] = ("sample",)

    @property
    def n_raw(self) -> int:
        """Raw parameters per input."""
        raise NotImplementedError

    # ------------------------------------------------------------------ what a conditioner builds
    def network(self, in_channels: int) -> nn.Module:
        """phi for input conditioning: images (B, in_channels, H, W) in [0, 1] -> theta (B, n_raw)."""
        raise NotImplementedError

    def initial_raw(self) -> Tensor:
        """(n_raw,) theta of the input-free distribution at init."""
        raise NotImplementedError

    def class_table(self, num_classes: int) -> Tensor:
        """(num_classes, n_raw) theta of each class at init (class-specific ablation)."""
        return self.initial_raw().expand(num_classes, -1).clone()

    # ------------------------------------------------------------------ the distribution
    def sample(self, x: Tensor, raw: Tensor, n_views: int) -> Views:
        """Draw `n_views` transformations per input from p(tau; raw) and apply them, view-major."""
        raise NotImplementedError

    def entropy(self, raw: Tensor) -> Tensor:
        """(B,) entropy of p(tau; raw) per row, in nats (the H of Eq. 2)."""
        raise NotImplementedError

    def initial_entropy(self) -> float:
        """Entropy at `initial_raw` (the default start of the contrastive target rule)."""
        return float(self.entropy(self.initial_raw().unsqueeze(0)))

    def default_entropy_bounds(self, conditioning: str) -> tuple[float, float]:
        """(Hmin, Hmax) of the dynamic lambda (Sec. 3.2) when the user sets none."""
        raise NotImplementedError

    @property
    def entropy_parts(self) -> tuple[str, ...]:
        """Names of the entropy's additive parts (one per independent dimension), in column order."""
        return ("all",)

    def part_entropies(self, views: Views) -> Tensor:
        """(B, P) entropy of each part per input, summing to `views.entropy` (differentiable)."""
        if views.entropy is None:
            raise ConfigError("part_entropies: these views carry no entropy")
        return views.entropy.unsqueeze(-1)

    def spread_entropy(self, spread: Sequence[float]) -> list[float]:
        """The entropy (nats) of each part at a spread stated in the family's own units (`spread_units`).

        Why: a target like "a 40 degree range" or "about 4 crops in play" can be reasoned about
        and carries across image sizes and families; its value in nats cannot.
        """
        raise NotImplementedError

    #: what `spread_entropy` reads, for messages and help
    spread_units: ClassVar[str] = ""

    def fraction_entropy(self, fraction: float) -> list[float]:
        """The entropy (nats) of each part at `fraction` of the widest distribution the family expresses.

        Why: a band stated relative to the family's maximum holds at any image size and never lies
        beyond what the parameterization can reach (the paper's 32 px band [2.5, 3.0] is above
        the log 10 = 2.30 nats of 28 px images' 10 candidate crops: lambda would grow forever).
        """
        raise NotImplementedError

    # ------------------------------------------------------------------ evaluation
    def test_views(self, x: Tensor, raw: Tensor, n_views: int, rule: str = "sample") -> Tensor:
        """Test-time views (n_views * B, C, H, W): "sample" draws from p(tau; raw) (Appendix C.2)."""
        if rule != "sample":
            raise ConfigError(f"instaaug: tta={rule} is not available for this parameterization")
        return self.sample(x, raw, n_views).x

    def inspect(self, raw: Tensor) -> dict[str, Tensor]:
        """Per-sample statistics (first dimension B): "entropy" (B,) and the distribution's parameters."""
        raise NotImplementedError

    def class_average(self, table: Tensor, b: int) -> dict[str, Tensor]:
        """`inspect` statistics averaged over the classes of a (num_classes, n_raw) table, for b samples.

        Class-specific InstaAug at test time: labels are unknown, so statistics are averages over
        the classes (no draws here; the conditioner adds its fallback crops).
        """
        raise NotImplementedError

    def step_logs(self, views: Views) -> dict[str, Tensor]:
        """Training-step statistics of `sample`'s views, for the records."""
        return {}

    def constants(self) -> dict[str, Tensor]:
        """Sample-independent values figures need (`AugmentationMethod.inspect_constants`)."""
        return {}


def sampled_boxes(boxes: Tensor, b: int) -> Tensor:
    """(S * b, 4) view-major boxes -> (b, S, 4), the "crop_boxes" layout."""
    return boxes.view(-1, b, 4).transpose(0, 1).contiguous()

