"""The build: pure Python, or with MMS_MYPYC=1 the hot path (COMPILED) compiled by mypyc.

The image is built compiled (Dockerfile) and `make test` runs the unit tests against a compiled
build too (build/compiled); a development install (`pip install -e .`) is pure Python, so an
edit always takes effect. Compiled, a Bandwidth v2 callback took 0.187 ms of CPU at
saturation, 0.206 pure; with the callback path compiled too, 0.173 (same runs,
bench/results/2026-12-02-steps-s4.md).

Compiled: modules of plain functions and dataclasses. Not compiled: pydantic models (mypyc
miscompiles their Field defaults), Starlette endpoints (a compiled function is not a function
to Starlette's routing), and modules whose tests hand them stand-ins for their collaborators.
"""

from __future__ import annotations

import os

from setuptools import setup

COMPILED = [
    "connector/avro_binary.py",
    "connector/callbacks.py",
    "connector/dedupe.py",
    "connector/logs.py",
    "connector/publisher.py",
    "connector/record.py",
    "connector/pipeline.py",
    "connector/providers/fields.py",
    "connector/providers/bandwidth_v1.py",
    "connector/providers/bandwidth_v2.py",
    "connector/providers/infobip.py",
    "connector/providers/openmarket/__init__.py",
    "connector/providers/openmarket/mime.py",
    "connector/providers/plivo.py",
    "connector/providers/sinch.py",
    "connector/providers/telnyx.py",
    "connector/providers/twilio.py",
    "connector/providers/vonage.py",
]

if os.environ.get("MMS_MYPYC") == "1":
    from mypyc.build import mypycify

    setup(ext_modules=mypycify(COMPILED, opt_level="3"))
else:
    setup()
