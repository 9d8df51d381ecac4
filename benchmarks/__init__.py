"""Performance suite: every figure is a ratio of two implementations timed side by side in one run.

``python -m benchmarks`` runs them all and writes ``benchmarks/results/<machine>.json`` and ``.md``; each
``python -m benchmarks.bench_<name>`` runs one and prints it. :mod:`benchmarks.schema` describes the results.
"""
