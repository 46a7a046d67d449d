"""`augbench.seeds`: the two seed derivations every committed number depends on stay as they are."""

from __future__ import annotations

import torch

from augbench.seeds import data_generator, data_seed, run_generator, run_seed


def test_the_derivations_give_the_numbers_they_always_gave():
    # values of the trainer's and the datasets' formulas before they moved here
    assert run_seed(0, "split") == 374788079615300020
    assert run_seed(7, "order/3") == 8447054841603909260
    assert data_seed(0, "clutter", 1, "train", 32) == 7572914621634733859
    assert data_seed(3, "rawfoot") == 912616489827627621


def test_each_purpose_has_its_own_stream():
    assert run_seed(0, "model") != run_seed(0, "method") != run_seed(1, "model")
    assert data_seed(0, "train") != data_seed(0, "test")
    assert torch.equal(torch.rand(4, generator=run_generator(2, "split")),
                       torch.rand(4, generator=torch.Generator().manual_seed(run_seed(2, "split"))))
    assert torch.equal(torch.rand(4, generator=data_generator(2, "a", 1)),
                       torch.rand(4, generator=torch.Generator().manual_seed(data_seed(2, "a", 1))))
