"""Seeds derived from (seed, tags), so each part of a dataset has its own random stream.

A part's stream then depends only on the user's seed and what the part is (class,
lighting, split...), never on how many other parts were requested: asking for more
test lightings or a bigger test set leaves the training data bit-identical.
"""

from __future__ import annotations

import hashlib

import torch


def derive_seed(seed: int, *tags: object) -> int:
    """A 63-bit seed from ``seed`` and ``tags`` (via sha256 of their repr)."""
    digest = hashlib.sha256(repr((int(seed),) + tags).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def generator(seed: int, *tags: object) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`derive_seed` (seed, *tags)."""
    return torch.Generator().manual_seed(derive_seed(seed, *tags))
