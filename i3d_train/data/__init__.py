"""Datasets: official split files -> video lists, one shared video dataset, DataModules."""
