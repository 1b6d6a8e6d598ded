"""zerodl vision package."""
