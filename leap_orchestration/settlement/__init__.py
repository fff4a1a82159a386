"""Settlement: baselines and event performance (DOMAIN.md §5-6)."""
