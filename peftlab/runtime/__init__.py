"""One run, phase by phase: the recipe, the one training loop, models, measurement, OOM handling."""
