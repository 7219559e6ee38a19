"""Storage-optimized training and HPO for ReDSM5 criteria matching and evidence binding."""

__version__ = "0.1.0"
