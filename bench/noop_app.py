"""Ceiling (a): a no-op Starlette endpoint on every callback path, served like the connector.

It reads the whole body and answers a small JSON 200, with the uvicorn settings of
`mms-connector serve` (connector/cli.py `_run`): what HTTP parsing and the framework cost alone.
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.payloads import PATHS

ACCEPTED = b'{"status":"accepted"}'


async def accept(request: Request) -> Response:
    await request.body()
    return Response(ACCEPTED, media_type="application/json")


async def healthz(_request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


app = Starlette(
    routes=[Route(p, accept, methods=["POST"]) for p in PATHS.values()]
    + [Route("/healthz", healthz)]
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # The same settings as connector.cli._run.
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=30,
    )


if __name__ == "__main__":
    main()
