"""The benchmark suite of issue 7 (``python bench/run.py``); see docs/PERFORMANCE.md."""
