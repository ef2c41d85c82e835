"""Training, evaluation, leakage audit and export for the brain_tumor models."""
