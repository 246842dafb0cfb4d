"""``python -m examples.fastapi_app [--host HOST] [--port PORT] [--timezone ZONE]``: serve the app with uvicorn."""

from __future__ import annotations

import argparse

import uvicorn

from quiv import InvalidTimezoneError

from .app import create_app
from .work import configure_logging


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m examples.fastapi_app",
        description="The quiv example app (sync face, asyncio, uvicorn).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="default: %(default)s")
    parser.add_argument("--port", type=int, default=8000, help="default: %(default)s")
    parser.add_argument(
        "--timezone",
        default="UTC",
        help="the zone of the nightly report's 02:30, e.g. Europe/Berlin (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    configure_logging()
    try:
        app = create_app(timezone=args.timezone)
    except InvalidTimezoneError as exc:
        parser.error(str(exc))
    # log_config=None: uvicorn's loggers propagate to ours, with job ids on every line
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_config=None)
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl+C after its graceful shutdown
        pass


if __name__ == "__main__":
    main()
