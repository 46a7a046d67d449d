"""The table output formats and their file suffixes (no pandas: the CLI parser lists them)."""

FORMATS = ("csv", "md", "latex")
SUFFIX = {"csv": "csv", "md": "md", "latex": "tex"}
SPREADS = ("ci", "std")  # what follows "±": the 95% t-interval's half-width, or the sample std
