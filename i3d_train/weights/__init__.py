"""Pretrained weights by name (registry, download, verification) and checkpoint converters: weights from
elsewhere -> this project's models."""
