"""``python -m examples.trio_app [--host HOST] [--port PORT] [--timezone ZONE]``: serve the app on trio.

The same as ``hypercorn --worker-class trio --bind HOST:PORT examples.trio_app:app``,
plus a line on stdout with the address once the server listens (``--port 0``
picks a free port).
"""

from __future__ import annotations

import argparse
import logging
import signal
from functools import partial

import trio
from fastapi import FastAPI
from hypercorn.config import Config
from hypercorn.trio import serve

from quiv import InvalidTimezoneError

from ..fastapi_app.work import configure_logging
from .app import create_app


async def run(app: FastAPI, host: str, port: int) -> None:
    config = Config()
    config.bind = [f"{host}:{port}"]
    # hypercorn's loggers, through the root logger: job ids on its lines too
    config.accesslog = logging.getLogger("hypercorn.access")
    config.errorlog = logging.getLogger("hypercorn.error")
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:

        async def shutdown_trigger() -> None:
            async for _ in signals:
                return

        async with trio.open_nursery() as nursery:
            binds = await nursery.start(
                partial(serve, app, config, shutdown_trigger=shutdown_trigger)
            )
            print(f"quiv trio example: {binds[0]}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m examples.trio_app",
        description="The quiv example app (AsyncQuiv, trio, hypercorn).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="default: %(default)s")
    parser.add_argument("--port", type=int, default=8000, help="default: %(default)s")
    parser.add_argument(
        "--timezone",
        default="UTC",
        help="the zone of the nightly report's 02:30, e.g. Europe/Berlin (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    try:
        app = create_app(timezone=args.timezone)
    except InvalidTimezoneError as exc:
        parser.error(str(exc))
    configure_logging()
    trio.run(run, app, args.host, args.port)


if __name__ == "__main__":
    main()
