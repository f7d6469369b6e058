"""Video I/O, below both ``data/`` and ``flow/``: opening, probing and decoding files (PyAV), resizing
frames and flow, and finding videos under a folder."""
