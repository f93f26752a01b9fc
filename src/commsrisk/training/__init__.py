"""Labeled data, fine-tuning, evaluation and the model registry."""
