"""Collection of run directories into frames, the paper's tables and figures (read from disk only)."""
