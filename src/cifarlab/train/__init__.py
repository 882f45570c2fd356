"""Training: recipes, the loop, optimizers and schedules, checkpoints."""
