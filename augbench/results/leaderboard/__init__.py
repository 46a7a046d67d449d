"""`augbench leaderboard`: a static HTML site of collected results that a person can open and cite.

One page per benchmark (a sortable table of methods: mean, 95% t-interval and n per metric, the
paper's number, cost per run, throughput and peak memory where `augbench bench` measured them),
one page per method (results, configurations chosen by validation, hyperparameters, every run
with its provenance, training curves, the benchmark's figures) and an index across benchmarks.
Pages come from Jinja2 templates (`templates/`); the only script is a small sort (`static/`),
shipped with the pages: no server, no CDN, works from file://. See `site` for the layout.
"""

from __future__ import annotations

from augbench.results.leaderboard.site import build_site, collect_roots, leaderboard

__all__ = ["build_site", "collect_roots", "leaderboard"]
