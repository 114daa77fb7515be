"""MLPerf Tiny architectures built in code (models.py) and the benchmark script."""
