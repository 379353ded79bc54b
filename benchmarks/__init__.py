"""Benchmarks and the performance regression report behind `nox -s benchmarks`.

The suites (`bench_*.py`) are pytest-benchmark tests, collected only with
`benchmarks/pytest.ini`, never by the normal test session. `python -m benchmarks` runs them,
turns every timing into a ratio to a reference measured in the same run, compares the ratios
with the committed baseline (`benchmarks/baseline/<size>.json`) and writes the report.
"""
