"""Errors reported to the user as one line (kept free of heavy imports: ``extract.py`` and other
commands that do not train import it without PyTorch Lightning)."""


class ConfigError(RuntimeError):
    """A user-facing problem with the config or the data, reported as one line."""


class ProtocolError(ValueError):
    """Initial weights or a transfer protocol that cannot be applied as configured (one line for the user)."""
