"""The Twilio fuzz stage (families and property in tests/fuzzing.py; `python -m bench.fuzz
--provider twilio` runs them for longer)."""

from tests.fuzzing import ci_stage

test_refused_cleanly_or_produced = ci_stage("twilio")
