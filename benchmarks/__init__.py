"""One script per figure: ``python -m benchmarks.NAME [--quick] --json PATH``."""
