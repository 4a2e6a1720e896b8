"""The ``catalog`` command line.

``catalog serve`` runs the API (gunicorn by default, Flask's server with
``--dev``); ``catalog bench`` measures ingestion and query latency; the graph
commands (``owner``, ``owns``, ``deps``, ``dependents``, ``impact``, ``path``,
``cycles``, ``graph ...``) live in ``app.graph.cli``. Exit status:
0 on success, 1 when the command failed, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from app.config import AppConfig, ConfigError, Overrides
from app.graph.cli import add_graph_commands

log = logging.getLogger("catalog")


def _config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="FILE",
        help="app-config.yaml in Backstage's shape; repeatable, later files win",
    )
    parser.add_argument(
        "--database-url",
        help="SQLAlchemy URL, e.g. postgresql://user@host/db (env: CATALOG_DATABASE_URL)",
    )
    parser.add_argument(
        "--location",
        action="append",
        metavar="PATH_OR_URL",
        help="catalog file or URL to load; repeatable; replaces catalog.locations",
    )


def _load_config(args: argparse.Namespace) -> AppConfig:
    return AppConfig.load(
        files=args.config,
        overrides=Overrides(
            port=getattr(args, "port", None),
            host=getattr(args, "host", None),
            database_url=args.database_url,
            locations=args.location,
        ),
    )


def cmd_serve(args: argparse.Namespace) -> int:
    config = _load_config(args)
    host, port = config.listen_host, config.listen_port
    log.info("Serving the catalog at http://%s:%d/api/catalog", host, port)
    if args.dev:
        from app import create_app

        app = create_app(config)
        app.run(host=host, port=port, threaded=True, use_reloader=False)
        return 0

    from gunicorn.app.base import BaseApplication

    class CatalogApplication(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", args.workers)
            self.cfg.set("threads", args.threads)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("timeout", 120)
            # Longer than the idle timeout of keep-alive clients such as Node's agent (5 s),
            # which Backstage's proxy and serve.js use: with gunicorn's 2 s default, a reused
            # connection closed by us in the meantime fails as "socket hang up" (a 502).
            self.cfg.set("keepalive", 75)
            self.cfg.set("accesslog", "-" if args.access_log else None)

        def load(self) -> Any:
            from app import create_app

            return create_app(config)

    CatalogApplication().run()
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from app.bench import run_benchmark

    return run_benchmark(args)


def cmd_openapi(args: argparse.Namespace) -> int:
    from app.openapi import SPEC_PATH, generate_spec, render_spec

    text = render_spec(generate_spec())
    if args.write:
        SPEC_PATH.parent.mkdir(parents=True, exist_ok=True)
        SPEC_PATH.write_text(text)
        print(f"wrote {SPEC_PATH}")
    elif args.check:
        if not SPEC_PATH.exists() or SPEC_PATH.read_text() != text:
            print(f"{SPEC_PATH} is out of date: run 'catalog openapi --write'", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="catalog", description="A Backstage-compatible software catalog"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the catalog API")
    _config_arguments(serve)
    serve.add_argument("--host", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default 7007)")
    serve.add_argument("--dev", action="store_true", help="Flask's development server")
    serve.add_argument("--workers", type=int, default=1, help="gunicorn worker processes")
    serve.add_argument("--threads", type=int, default=8, help="threads per worker")
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.set_defaults(func=cmd_serve)

    bench = sub.add_parser("bench", help="benchmark ingestion and queries")
    bench.add_argument(
        "--entities",
        type=int,
        action="append",
        help="synthetic catalog size; repeatable (default 10000)",
    )
    bench.add_argument("--database-url", help="database to benchmark (default: temporary SQLite)")
    bench.add_argument("--requests", type=int, default=200, help="requests per query kind")
    bench.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    bench.set_defaults(func=cmd_bench)

    openapi = sub.add_parser("openapi", help="print, write or check the OpenAPI spec")
    mode = openapi.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="write openapi/openapi.yaml")
    mode.add_argument("--check", action="store_true", help="fail if openapi/openapi.yaml is stale")
    openapi.set_defaults(func=cmd_openapi)
    add_graph_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Alembic announces every plugin it sets up; only its warnings matter here.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"catalog: configuration error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
