"""The graph commands of ``catalog``: owner, owns, deps, dependents, impact, path, cycles, graph.

Each command works against a running server (``--url``, or ``$CATALOG_URL``;
through :mod:`app.client`) or directly on a catalog database
(``--database-url``, or ``$CATALOG_DATABASE_URL``; the graph is then built in
this process). Tables for people by default, ``--json`` for scripts (the API's
answer as is). Exit status: 0 success, 1 unknown entity (or no path, or the
server/database failed), 2 usage errors; messages go to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from app.client import GraphClient, GraphClientError

EXPORT_FORMATS = ["dot", "graphml", "mermaid", "json", "svg"]
# API export format names (the CLI says ``json`` for node-link JSON).
_API_FORMAT = {"json": "node-link"}


class Failure(Exception):
    """A command failed: ``status`` is the exit code, ``message`` goes to stderr."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


# -- backends: HTTP or an in-process graph -------------------------------------------


class HttpBackend:
    def __init__(self, url: str | None):
        self.client = GraphClient(url)

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            if method == "export":
                query, fmt, options = args
                return self.client.export(query, _API_FORMAT.get(fmt, fmt), **options)
            return getattr(self.client, method)(*args, **kwargs)
        except GraphClientError as error:
            status = 1 if error.status in (0, 404) or error.status >= 500 else 2
            raise Failure(status, f"{error.name}: {error.message}") from None


class DatabaseBackend:
    """The same queries on a database, through :class:`app.graph.service.GraphService`."""

    def __init__(self, url: str):
        from app.graph.service import GraphService
        from app.storage.database import Database

        self.service = GraphService(Database(url))

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        from sqlalchemy.exc import SQLAlchemyError

        from app.errors import CatalogError, InputError, NotFoundError

        try:
            if method == "export":
                query, fmt, options = args
                result = self._query(query, options)
                return _as_bytes(self.service.render(result, fmt))
            if method == "status":
                return self.service.status(**kwargs)
            result = getattr(self.service, method)(*args, **kwargs)
            return result.body
        except NotFoundError as error:
            raise Failure(1, f"NotFoundError: {error.message}") from None
        except InputError as error:
            raise Failure(2, f"InputError: {error.message}") from None
        except CatalogError as error:
            raise Failure(1, f"{error.name}: {error.message}") from None
        except SQLAlchemyError as error:
            raise Failure(1, f"Cannot read the catalog database: {error}") from None

    def _query(self, query: str, options: dict[str, Any]) -> Any:
        if query == "subgraph":
            return self.service.subgraph(
                options.get("rootEntityRefs") or [],
                relations=options.get("relations"),
                kinds=options.get("kinds"),
                depth=options.get("depth"),
                direction=options.get("direction") or "both",
            )
        raise Failure(2, f"cannot export {query!r}")


def _as_bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def _backend(args: argparse.Namespace) -> HttpBackend | DatabaseBackend:
    if args.url and args.database_url:
        raise Failure(2, "give either --url or --database-url, not both")
    if args.database_url:
        return DatabaseBackend(args.database_url)
    if args.url or os.environ.get("CATALOG_URL"):
        return HttpBackend(args.url)
    if os.environ.get("CATALOG_DATABASE_URL"):
        return DatabaseBackend(os.environ["CATALOG_DATABASE_URL"])
    return HttpBackend(None)


# -- output ---------------------------------------------------------------------


def _table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    cells = [[str(h) for h in headers], *[["" if c is None else str(c) for c in r] for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _name(entity: dict[str, Any] | None) -> str:
    if not entity:
        return "-"
    text = entity["entityRef"]
    label = entity.get("displayName") or entity.get("title")
    if label:
        text += f" ({label})"
    if entity.get("missing"):
        text += " [missing]"
    return text


def _contact(contact: dict[str, Any] | None) -> str:
    if not contact:
        return "-"
    return contact.get("email") or contact.get("displayName") or "-"


def _truncated_note(body: dict[str, Any], shown: int) -> str | None:
    if body.get("truncated"):
        return f"(showing {shown} of {body.get('totalItems')}; raise --limit to see more)"
    return None


def print_related(body: dict[str, Any]) -> str:
    rows = [
        (
            item["depth"],
            item["entityRef"],
            item["kind"],
            f"{item['via']['source']} {item['via']['type']} {item['via']['target']}",
        )
        for item in body["items"]
    ]
    noun = "dependencies" if body["direction"] == "dependencies" else "dependents"
    lines = [f"{body['totalItems']} {noun} of {body['entity']['entityRef']}", ""]
    lines.append(_table(rows, ["DEPTH", "ENTITY", "KIND", "VIA"]) if rows else "(none)")
    note = _truncated_note(body, len(rows))
    return "\n".join([*lines, *([note] if note else [])])


def print_impact(body: dict[str, Any]) -> str:
    lines = [
        f"{body['totalItems']} entities depend on {body['entity']['entityRef']}",
        "",
        "By owner:",
        _table(
            [(_name(g["owner"]), _contact(g["contact"]), g["count"]) for g in body["byOwner"]],
            ["OWNER", "CONTACT", "ENTITIES"],
        )
        if body["byOwner"]
        else "(none)",
        "",
        "By system:",
        _table([(g["system"] or "-", g["count"]) for g in body["bySystem"]], ["SYSTEM", "ENTITIES"])
        if body["bySystem"]
        else "(none)",
    ]
    return "\n".join(lines)


def _chain(path: dict[str, Any]) -> str:
    refs = [entity["entityRef"] for entity in path["entities"]]
    parts = [refs[0]]
    for index, edge in enumerate(path["edges"]):
        nxt = refs[index + 1]
        if edge["source"] == refs[index]:
            parts.append(f" --{edge['type']}--> {nxt}")
        else:
            parts.append(f" <--{edge['type']}-- {nxt}")
    return "".join(parts)


def print_path(body: dict[str, Any]) -> str:
    if "paths" in body:
        lines = [f"{body['totalPaths']} path(s) from {body['from']} to {body['to']}"]
        lines += [f"{p['length']}: {_chain(p)}" for p in body["paths"]]
        if body.get("truncated"):
            lines.append("(stopped early; raise --max-paths or lower --max-length)")
        return "\n".join(lines)
    return f"{body['length']}: {_chain(body)}"


def print_cycles(body: dict[str, Any]) -> str:
    if not body["cycles"]:
        return "no dependency cycles"
    lines = [" -> ".join([*cycle, cycle[0]]) for cycle in body["cycles"]]
    if body.get("truncated"):
        lines.append(f"(stopped after {body['totalCycles']} cycles; raise --limit)")
    return "\n".join(lines)


def print_owner(body: dict[str, Any]) -> str:
    owner = body["owner"]
    lines = [f"Entity   {body['entity']['entityRef']}"]
    if owner is None:
        lines.append("Owner    (none)")
        return "\n".join(lines)
    lines.append(f"Owner    {_name(owner)}" + ("" if body["ownerExists"] else " - does not exist"))
    lines.append(f"Contact  {_contact(body['contact'])}")
    if body["parents"]:
        lines.append("Parents  " + " > ".join(p["entityRef"] for p in body["parents"]))
    if body["members"]:
        lines += [
            "",
            _table([(m["entityRef"], _contact(m)) for m in body["members"]], ["MEMBER", "EMAIL"]),
        ]
    return "\n".join(lines)


def print_owned(body: dict[str, Any]) -> str:
    rows = [(i["entityRef"], i["kind"], i["owner"], i["depth"]) for i in body["items"]]
    lines = [
        f"{body['totalItems']} entities owned by {body['group']['entityRef']}"
        + (" and its child groups" if body["transitive"] else ""),
        "",
    ]
    lines.append(_table(rows, ["ENTITY", "KIND", "OWNER", "DEPTH"]) if rows else "(none)")
    note = _truncated_note(body, len(rows))
    return "\n".join([*lines, *([note] if note else [])])


def print_orphans(body: dict[str, Any]) -> str:
    lines = ["Without an owner:"]
    lines.append(
        _table([(e["entityRef"], e["kind"]) for e in body["unowned"]], ["ENTITY", "KIND"])
        if body["unowned"]
        else "(none)"
    )
    lines += ["", "Owner does not exist:"]
    lines.append(
        _table([(e["entityRef"], e["owner"]) for e in body["ownerMissing"]], ["ENTITY", "OWNER"])
        if body["ownerMissing"]
        else "(none)"
    )
    return "\n".join(lines)


def print_central(body: dict[str, Any]) -> str:
    rows = [
        (i["entityRef"], i["dependents"], i["transitiveDependents"], f"{i['pagerank']:.5f}")
        for i in body["items"]
    ]
    return _table(rows, ["ENTITY", "DEPENDENTS", "TRANSITIVE", "PAGERANK"]) if rows else "(none)"


def print_status(body: dict[str, Any]) -> str:
    lines = [
        f"generation {body['generation']}: {body['entities']} entities, "
        f"{body['nodes']} nodes, {body['edges']} edges"
    ]
    if "memoryBytes" in body:
        lines.append(f"memory {body['memoryBytes'] / 1e6:.1f} MB")
    return "\n".join(lines)


# -- commands -------------------------------------------------------------------------


def _quiet(args: argparse.Namespace) -> None:
    """Scripts read stdout and stderr; the graph's build log is noise there unless -v."""
    if not getattr(args, "verbose", False):
        logging.getLogger("app.graph").setLevel(logging.WARNING)


def _run(args: argparse.Namespace, fetch: Callable[[Any], Any], show: Callable[[Any], str]) -> int:
    _quiet(args)
    try:
        body = fetch(_backend(args))
    except Failure as failure:
        print(f"catalog: {failure.message}", file=sys.stderr)
        return failure.status
    if args.json:
        print(json.dumps(body, indent=2, ensure_ascii=False))
    else:
        print(show(body))
    return 0


def cmd_owner(args: argparse.Namespace) -> int:
    return _run(args, lambda b: b.call("ownership", args.ref), print_owner)


def cmd_owns(args: argparse.Namespace) -> int:
    return _run(
        args,
        lambda b: b.call(
            "owned", args.group, transitive=args.transitive, kinds=args.kind, limit=args.limit
        ),
        print_owned,
    )


def _related_command(
    method: str, printer: Callable[[Any], str]
) -> Callable[[argparse.Namespace], int]:
    def command(args: argparse.Namespace) -> int:
        return _run(
            args,
            lambda b: b.call(
                method,
                args.ref,
                depth=args.depth,
                relations=args.relation,
                kinds=args.kind,
                limit=args.limit,
            ),
            printer,
        )

    return command


def cmd_path(args: argparse.Namespace) -> int:
    directed = not args.undirected
    if args.all:
        return _run(
            args,
            lambda b: b.call(
                "paths",
                args.source,
                args.target,
                relations=args.relation,
                directed=directed,
                max_length=args.max_length,
                max_paths=args.max_paths,
            ),
            print_path,
        )
    return _run(
        args,
        lambda b: b.call(
            "path", args.source, args.target, relations=args.relation, directed=directed
        ),
        print_path,
    )


def cmd_cycles(args: argparse.Namespace) -> int:
    return _run(
        args,
        lambda b: b.call(
            "cycles", relations=args.relation, limit=args.limit, max_length=args.max_length
        ),
        print_cycles,
    )


def cmd_orphans(args: argparse.Namespace) -> int:
    return _run(args, lambda b: b.call("orphans", kinds=args.kind), print_orphans)


def cmd_central(args: argparse.Namespace) -> int:
    return _run(
        args,
        lambda b: b.call(
            "most_depended_on",
            relations=args.relation,
            kinds=args.kind,
            limit=args.limit,
            sort=args.sort,
        ),
        print_central,
    )


def cmd_status(args: argparse.Namespace) -> int:
    return _run(args, lambda b: b.call("status", memory=args.memory), print_status)


def cmd_export(args: argparse.Namespace) -> int:
    options = {
        "rootEntityRefs": args.root or None,
        "relations": args.relation,
        "kinds": args.kind,
        "depth": args.depth if args.root else None,
        "direction": args.direction,
    }
    _quiet(args)
    if not args.root and args.depth is not None:
        print("catalog: --depth needs --root", file=sys.stderr)
        return 2
    from app.progress import Progress

    try:
        # A spinner with the elapsed time on a terminal; nothing in scripts.
        with Progress(f"exporting {args.format}") as bar:
            with bar.ticking():
                data = _backend(args).call("export", "subgraph", args.format, options)
            bar.close("")
    except Failure as failure:
        print(f"catalog: {failure.message}", file=sys.stderr)
        return failure.status
    if args.output:
        Path(args.output).write_bytes(data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return 0


# -- parser -----------------------------------------------------------------------------


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {value}")
    return value


def _common(parser: argparse.ArgumentParser, *, json_flag: bool = True) -> None:
    where = parser.add_argument_group("where the catalog is")
    where.add_argument(
        "--url", help="a running server, e.g. http://localhost:7007 (env: CATALOG_URL)"
    )
    where.add_argument(
        "--database-url",
        help="query a catalog database directly (env: CATALOG_DATABASE_URL)",
    )
    if json_flag:
        parser.add_argument("--json", action="store_true", help="print the JSON answer")


def _filters(parser: argparse.ArgumentParser, *, depth: bool = True, limit: bool = True) -> None:
    parser.add_argument(
        "--relation", action="append", metavar="TYPE", help="relation type to follow; repeatable"
    )
    parser.add_argument(
        "--kind", action="append", metavar="KIND", help="only these kinds; repeatable"
    )
    if depth:
        parser.add_argument("--depth", type=_positive, metavar="N", help="at most N hops")
    if limit:
        parser.add_argument("--limit", type=_positive, metavar="N", help="list at most N entities")


def add_graph_commands(sub: Any) -> None:
    """Add the graph subcommands to ``catalog``'s subparsers."""
    owner = sub.add_parser("owner", help="who owns an entity, their parent groups and members")
    owner.add_argument("ref", help="entity ref, e.g. payments-gateway")
    _common(owner)
    owner.set_defaults(func=cmd_owner)

    owns = sub.add_parser("owns", help="what a group owns")
    owns.add_argument("group", help="group ref, e.g. team-processing")
    owns.add_argument("--transitive", action="store_true", help="also what child groups own")
    owns.add_argument("--kind", action="append", metavar="KIND", help="only these kinds")
    owns.add_argument("--limit", type=_positive, metavar="N", help="list at most N entities")
    _common(owns)
    owns.set_defaults(func=cmd_owns)

    for name, method, printer, text in (
        ("deps", "dependencies", print_related, "what an entity depends on, transitively"),
        ("dependents", "dependents", print_related, "what depends on an entity, transitively"),
        ("impact", "impact", print_impact, "dependents of an entity by owner and system"),
    ):
        command = sub.add_parser(name, help=text)
        command.add_argument("ref", help="entity ref")
        _filters(command)
        _common(command)
        command.set_defaults(func=_related_command(method, printer))

    path = sub.add_parser("path", help="how one entity depends on another")
    path.add_argument("source", metavar="FROM")
    path.add_argument("target", metavar="TO")
    path.add_argument("--all", action="store_true", help="all simple paths, not just a shortest")
    path.add_argument(
        "--undirected",
        action="store_true",
        help="follow relations either way (how are they related?)",
    )
    path.add_argument("--relation", action="append", metavar="TYPE")
    path.add_argument("--max-length", type=_positive, metavar="N", help="with --all (default 8)")
    path.add_argument("--max-paths", type=_positive, metavar="N", help="with --all (default 20)")
    _common(path)
    path.set_defaults(func=cmd_path)

    cycles = sub.add_parser("cycles", help="dependency cycles")
    cycles.add_argument(
        "--relation", action="append", metavar="TYPE", help="relation types (default dependsOn)"
    )
    cycles.add_argument("--limit", type=_positive, metavar="N")
    cycles.add_argument("--max-length", type=_positive, metavar="N")
    _common(cycles)
    cycles.set_defaults(func=cmd_cycles)

    graph = sub.add_parser("graph", help="export the graph, and more graph queries")
    graph_sub = graph.add_subparsers(dest="graph_command", required=True)
    export = graph_sub.add_parser("export", help="export the graph or a part of it")
    export.add_argument("--format", choices=EXPORT_FORMATS, default="dot")
    export.add_argument(
        "--root",
        action="append",
        metavar="REF",
        help="start from this entity; repeatable (default: the whole graph)",
    )
    export.add_argument("--direction", choices=["both", "out", "in"], default=None)
    export.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")
    _filters(export, limit=False)
    _common(export, json_flag=False)
    export.set_defaults(func=cmd_export)

    orphans = graph_sub.add_parser("orphans", help="entities without an existing owner")
    orphans.add_argument("--kind", action="append", metavar="KIND")
    _common(orphans)
    orphans.set_defaults(func=cmd_orphans)

    central = graph_sub.add_parser("central", help="the most depended-on entities")
    _filters(central, depth=False)
    central.add_argument("--sort", choices=["dependents", "pagerank"], default=None)
    _common(central)
    central.set_defaults(func=cmd_central)

    status = graph_sub.add_parser("status", help="the graph's generation and size")
    status.add_argument("--memory", action="store_true", help="also measure its memory")
    _common(status)
    status.set_defaults(func=cmd_status)
