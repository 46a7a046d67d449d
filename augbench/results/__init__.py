"""Run records, collection, the paper's tables and figures."""
