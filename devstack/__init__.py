"""Development and demo only: the embedded servers, the seed and the traffic simulator.

Nothing in ``core`` imports this package; the command line does, and the tests and the benchmark.
"""
