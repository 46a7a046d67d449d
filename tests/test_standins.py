"""The embedded stand-ins show the effects they stand in for, on one seed at the benchmark's own size.

These are the runs of `augbench demo --full` for seed 0 (its tables report all five seeds): each
test trains InstaAug with the benchmark's defaults and checks the ground-truth metric that tells
input-dependent from global learning. Slow (a minute or two each on 2 CPU cores), and kept in CI
because they guard the promise README makes about what the stand-ins show.
"""

from __future__ import annotations

import pytest

from augbench.runs import execute, resolve

pytestmark = pytest.mark.slow
QUIET = {"run.progress": False, "run.device": "cpu"}


def test_clutter_crop_instaaug_places_its_crops_on_the_object(tmp_path):
    m = execute(resolve("clutter-crop", "instaaug", 0, QUIET), tmp_path / "run")
    # the same crops at random positions keep the object less often: where they lie is learned
    assert m["keeps_object"] >= m["keeps_object_chance"] + 0.03, m
    assert 0.3 < m["crop_area"] < 0.9, m  # local crops, not the whole image


def test_texture_color_instaaug_learns_wide_hue_ranges_only_where_hue_is_not_the_label(tmp_path):
    m = execute(resolve("texture-color", "instaaug", 0, QUIET), tmp_path / "run")
    # wider where hue does not define the label. With phi's public (He) initialisation the margin is
    # small: seed 0 gives 1.13x here (1 thread) and 1.24x with 2 threads, seed 1 1.22x (it was 1.7x
    # over 5 seeds with PyTorch's default initialisation); README reports the 5-seed paired numbers
    assert m["hue_width_free"] > 1.05 * m["hue_width_defined"], m
    # a global range that leaves no hue class's label-preserving arc covers at most 22% of the arcs
    # on average; wider global ones cross into the partner class (random colour at +-0.2 turns:
    # coverage 50%, violation 20%)
    assert m["hue_coverage"] > 0.3 and m["hue_violation"] < 0.15, m
