"""The Plivo fuzz stage (families and property in tests/fuzzing.py; `python -m bench.fuzz
--provider plivo` runs them for longer)."""

from tests.fuzzing import ci_stage

test_refused_cleanly_or_produced = ci_stage("plivo")
