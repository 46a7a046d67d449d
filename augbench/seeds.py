"""Seeds derived from a user's seed, so that each purpose draws from a random stream of its own.

Two derivations, with two purposes. Both stay as they are: every committed number depends on
one of them (changing either changes every dataset or every run).

- `run_seed(seed, purpose)`: the trainer's streams (the validation split, the model's and the
  method's initialisation, each epoch's order, exploration batches): 63 bits of sha256 of
  "seed/purpose". The split then depends on the seed alone, never on the method.
- `data_seed(seed, *tags)`: the parts of a generated or sampled dataset (a class, a lighting,
  a split): 63 bits of sha256 of repr((seed, *tags)). A part's stream depends only on the seed
  and what the part is, never on how many other parts were asked for: more test lightings or
  a bigger test set leave the training data bit-identical.

Example: ``torch.randperm(n, generator=run_generator(seed, "split"))``.
"""

from __future__ import annotations

import hashlib

import torch


def run_seed(seed: int, purpose: str) -> int:
    """The seed of one of a run's streams (`purpose`: "split", "model", "method", "order/3", ...)."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{purpose}".encode()).digest()[:8], "little") >> 1


def run_generator(seed: int, purpose: str) -> torch.Generator:
    """A CPU generator seeded with `run_seed(seed, purpose)`."""
    return torch.Generator().manual_seed(run_seed(seed, purpose))


def data_seed(seed: int, *tags: object) -> int:
    """The seed of one part of a dataset, named by `tags` (e.g. ``("train", class_index)``)."""
    digest = hashlib.sha256(repr((int(seed),) + tags).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def data_generator(seed: int, *tags: object) -> torch.Generator:
    """A CPU generator seeded with `data_seed(seed, *tags)`."""
    return torch.Generator().manual_seed(data_seed(seed, *tags))


__all__ = ["data_generator", "data_seed", "run_generator", "run_seed"]
