"""Results tables in the paper's layouts from the ``metrics.json`` files of many runs."""
