"""zerodl core: NumPy engine."""
