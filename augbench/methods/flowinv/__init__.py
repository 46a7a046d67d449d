"""FlowInv (Singhal et al., ICCV 2023): an image-conditioned normalizing flow over transformations.

- `method`: the registered `flowinv` method: one task-plus-entropy loss (Eq. 18), burn-in,
  test-time averaging over draws (Eq. 8), per-sample summaries for the ground-truth metrics.
- `flow`: the conditional RealNVP flow (mixture-of-Gaussians base, affine couplings, tanh
  bounds) with exact log-densities and inverses, and the conditioning CNN.
- `spaces`: what the flow's parameters mean on each family (rotation angle, crop box, affine).
"""

from augbench.methods.flowinv.flow import ConditionalFlow, EmbeddingNet
from augbench.methods.flowinv.method import FlowInv
from augbench.methods.flowinv.spaces import SPACES, build_space

__all__ = ["SPACES", "ConditionalFlow", "EmbeddingNet", "FlowInv", "build_space"]
