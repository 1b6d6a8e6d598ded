"""Command-line applications: ``zerodl <app> ...``. The only layer that parses argv."""
