"""The ``catalog`` command line.

``catalog serve`` runs the API (gunicorn by default, Flask's server with
``--dev``); ``catalog ingest`` processes the configured locations into the
database and exits; ``catalog validate`` lints catalog files offline;
``catalog bench`` measures ingestion and query latency; the graph commands
(``owner``, ``owns``, ``deps``, ``dependents``, ``impact``, ``path``, ``cycles``,
``graph ...``) live in ``app.graph.cli``. Exit status: 0 on success, 1 when the
command failed, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import atexit
import ipaddress
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from app.config import AppConfig, ConfigError, Overrides
from app.graph.cli import add_graph_commands
from app.logs import configure_logging, restyle_handlers

log = logging.getLogger("catalog")

# prometheus_client reads it when first imported: set before the app is loaded.
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


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
            log_format=getattr(args, "log_format", None),
            access_log=getattr(args, "access_log", None),
            processing=getattr(args, "processing", None),
        ),
    )


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_exposure(config: AppConfig, allow_unauthenticated: bool) -> None:
    """Say at start-up who may call the server; refuse to serve other hosts unauthenticated.

    Without ``backend.auth.externalAccess`` anyone who can connect may read and write
    the catalog, so the server listens on loopback only unless told otherwise.
    """
    auth, host = config.auth, config.listen_host
    if auth.enabled:
        subjects = ", ".join(f"{t.subject} ({t.access})" for t in auth.tokens)
        log.info(
            "Authentication on: bearer tokens of %s; requests without a valid token get 401 "
            "(health probes stay open)",
            subjects,
        )
        if auth.allow_anonymous:
            log.warning(
                "backend.auth.dangerouslyDisableDefaultAuthPolicy is set: requests without "
                "a token are let in with full access"
            )
        return
    if is_loopback(host):
        log.warning(
            "Authentication is not configured (backend.auth.externalAccess): listening on "
            "loopback (%s) only; anyone on this machine may read and write the catalog",
            host,
        )
        return
    if allow_unauthenticated or auth.allow_anonymous:
        log.warning(
            "Authentication is not configured and the catalog listens on %s: anyone who can "
            "reach it may read and write the catalog (allowed by %s)",
            host,
            "--allow-unauthenticated"
            if allow_unauthenticated
            else "backend.auth.dangerouslyDisableDefaultAuthPolicy",
        )
        return
    raise ConfigError(
        f"refusing to listen on {host} without authentication: configure static tokens in "
        "backend.auth.externalAccess, or pass --allow-unauthenticated (or set "
        "backend.auth.dangerouslyDisableDefaultAuthPolicy: true) to serve it to anyone"
    )


def _metrics_directory(workers: int) -> None:
    """Several workers share their metrics through files (prometheus_client's multiprocess
    mode); a fresh folder per server, removed when it exits."""
    if workers <= 1 or os.environ.get(METRICS_DIR_ENV):
        return
    directory = tempfile.mkdtemp(prefix="catalog-metrics-")
    os.environ[METRICS_DIR_ENV] = directory
    atexit.register(shutil.rmtree, directory, ignore_errors=True)


def _gunicorn_errors_as_envelopes() -> None:
    """What gunicorn refuses before the app sees it (a request line over 4094 bytes: 414,
    header fields over 8190: 431, malformed HTTP: 400) is answered in Backstage's error
    envelope too, as JSON, instead of gunicorn's HTML page."""
    from gunicorn import util

    from app import jsonutil

    def write_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
        name = {403: "NotAllowedError", 501: "NotImplementedError"}.get(status_int)
        if name is None:
            name = "InputError" if 400 <= status_int < 500 else "Error"
        body = jsonutil.dumps(
            {
                "error": {"name": name, "message": mesg or reason},
                # The request could not be read, so neither is known.
                "request": {"method": "", "url": ""},
                "response": {"statusCode": status_int},
            }
        ).encode()
        head = (
            f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        util.write_nonblock(sock, head.encode("latin-1") + body)

    util.write_error = write_error


def cmd_serve(args: argparse.Namespace) -> int:
    config = _load_config(args)
    log_format = config.log_format
    configure_logging(log_format, logging.DEBUG if args.verbose else logging.INFO)
    _quiet_libraries()
    host, port = config.listen_host, config.listen_port
    check_exposure(config, args.allow_unauthenticated)
    log.info("Serving the catalog at http://%s:%d/api/catalog", host, port)
    if config.processing_enabled:
        log.info(
            "Processing: on; every worker runs the processing loop and the entity providers "
            "(several share the work through the database)"
        )
    else:
        log.info("Processing: off (catalog.processing.enabled: false); serving the API only")
    if args.dev:
        from app import create_app

        app = create_app(config)
        app.run(host=host, port=port, threaded=True, use_reloader=False)
        return 0

    from gunicorn.app.base import BaseApplication
    from gunicorn.glogging import Logger

    _metrics_directory(args.workers)
    _gunicorn_errors_as_envelopes()

    class CatalogLogger(Logger):  # type: ignore[misc]
        """gunicorn's own records in our format (and request ids on its access lines)."""

        def setup(self, cfg: Any) -> None:
            super().setup(cfg)
            restyle_handlers(self.error_log, log_format)

    def child_exit(_server: Any, worker: Any) -> None:
        from app.metrics import mark_worker_dead

        mark_worker_dead(worker.pid)

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
            self.cfg.set("logger_class", CatalogLogger)
            # gunicorn's control socket (25.1+) has one path per user: a second instance
            # on the machine would take it over, and the first one's exit remove it.
            if "control_socket_disable" in self.cfg.settings:
                self.cfg.set("control_socket_disable", True)
            self.cfg.set("child_exit", child_exit)
            # JSON request logs come from the app itself (app.api.observability).
            gunicorn_access = config.access_log and log_format == "text"
            self.cfg.set("accesslog", "-" if gunicorn_access else None)
            self.cfg.set(
                "access_log_format",
                '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %({x-request-id}o)s',
            )

        def load(self) -> Any:
            from app import create_app

            return create_app(config)

    CatalogApplication().run()
    return 0


def _quiet_libraries() -> None:
    # Alembic announces every plugin it sets up; only its warnings matter here.
    logging.getLogger("alembic").setLevel(logging.WARNING)


def cmd_ingest(args: argparse.Namespace) -> int:
    """Process the configured locations into the database until nothing is left to do."""
    from sqlalchemy import func, select

    from app.catalog import Catalog
    from app.engine.refresh_state import count_pending
    from app.progress import Progress
    from app.storage.tables import refresh_state

    config = _load_config(args)
    if not args.verbose:  # which plugins load is noise next to the bar
        logging.getLogger("app.plugins").setLevel(logging.WARNING)
    catalog = Catalog.from_config(config, processing=False)
    engine = catalog.engine
    deadline = time.monotonic() + args.timeout
    started = time.monotonic()
    try:
        with Progress("ingesting", unit="entities") as bar:
            engine.connect_providers()
            while True:
                work = engine.run_once()
                with catalog.db.engine.connect() as conn:
                    unprocessed, queued = count_pending(conn)
                    known = conn.execute(select(func.count()).select_from(refresh_state)).scalar()
                total = int(known or 0)
                bar.update(total - unprocessed, total, f"(stitch queue {queued})")
                if work == 0 and engine.is_idle():
                    break
                if time.monotonic() > deadline:
                    bar.close()
                    print(
                        f"catalog: ingestion did not settle within {args.timeout:g} s",
                        file=sys.stderr,
                    )
                    return 1
        stats = engine.stats
        print(
            f"ingested: {stats.processed} processed, {stats.failed} failed, "
            f"{stats.stitched} stitched in {time.monotonic() - started:.1f} s",
            file=sys.stderr,
        )
    finally:
        catalog.stop()
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from app.validate import run

    try:
        config = AppConfig.load(files=args.config)
    except ConfigError as exc:
        print(f"catalog: configuration error: {exc}", file=sys.stderr)
        return 2
    return run(args, config)


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
    serve.add_argument(
        "--access-log",
        action="store_true",
        default=None,
        help="log every request (backend.logging.accessLog)",
    )
    serve.add_argument(
        "--log-format",
        choices=["text", "json"],
        help="text (default) or one JSON object per line (backend.logging.format)",
    )
    serve.add_argument(
        "--processing",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the processing loop and the entity providers in this server (default: "
        "catalog.processing.enabled, true); --no-processing serves the API only",
    )
    serve.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        help="listen on a non-loopback host without backend.auth (anyone may read and write)",
    )
    serve.set_defaults(func=cmd_serve)

    ingest = sub.add_parser(
        "ingest", help="process the configured locations into the database, then exit"
    )
    _config_arguments(ingest)
    ingest.add_argument(
        "--timeout", type=float, default=3600.0, help="give up after this many seconds"
    )
    ingest.set_defaults(func=cmd_ingest)

    validate = sub.add_parser(
        "validate", help="lint catalog-info.yaml files offline, as the server would read them"
    )
    validate.add_argument("files", nargs="+", metavar="FILE", help="files or folders to check")
    validate.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="FILE",
        help="app-config.yaml whose catalog.rules, catalog.limits and processors apply",
    )
    validate.add_argument(
        "-q", "--quiet", action="store_true", help="print nothing when every file is valid"
    )
    validate.set_defaults(func=cmd_validate)

    from app.bench import add_arguments as add_bench_arguments

    bench = sub.add_parser(
        "bench",
        help="benchmark ingestion, queries, the graph and memory",
        description="Generate a deterministic synthetic organisation, serve it cold with "
        "'catalog serve', time until every entity and relation is served, then time the "
        "query mix and the graph API; --reference adds the real Backstage backend.",
    )
    add_bench_arguments(bench)
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
    configure_logging("text", logging.DEBUG if args.verbose else logging.INFO)
    _quiet_libraries()
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
