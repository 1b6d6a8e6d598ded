"""zerodl rl package."""
