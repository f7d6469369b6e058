"""Checkpoint converters: weights from elsewhere -> this project's models."""
