"""Throughput and latency benchmark of the connector: `python -m bench.run --help`."""
