"""Datasets: in-memory uint8 splits, real-data loaders and embedded generators."""
