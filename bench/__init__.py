"""Throughput and latency benchmark of the connector: `python -m bench.run --help`; which
module holds what: bench/README.md ("Where things are")."""
