"""The mwcomms benchmark suite: ``bash benchmarks/run.sh`` runs it.

``python -m benchmarks`` (see :mod:`benchmarks.suite`) starts its own
nginx, runs every client in its own process (:mod:`benchmarks.worker`)
and writes results.md, results.json and ratios.png.
"""
