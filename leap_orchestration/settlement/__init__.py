"""Settlement: baselines and event performance (docs/baselines.md)."""
