"""CORS from ``backend.cors``, answering exactly as a Backstage backend does.

Backstage hands ``backend.cors`` to the express ``cors`` middleware, with every origin
pattern compiled by minimatch (``nocase``, ``noglobstar``). This module reproduces that
pair, so an app-config written for Backstage behaves the same here:

- without ``backend.cors``, no CORS header is ever sent (browsers refuse cross-origin);
- an allowed ``Origin`` is echoed back with ``Vary: Origin``; a refused one gets no CORS
  header at all and the request goes on untouched (the browser does the refusing);
- every ``OPTIONS`` from an allowed origin is a preflight, answered here with
  ``optionsSuccessStatus`` (204) unless ``preflightContinue`` is set.

One addition: ``Link`` is always exposed: ``GET /entities?limit=`` pages with it, and a
cross-origin client could not read it otherwise.

Written out rather than taken from flask-cors: flask-cors matches origins by regular
expression, not by Backstage's globs, and its defaults (any origin, every route) differ.
"""

from __future__ import annotations

import re

from flask import Flask, Response, request

from app.config import AppConfig, CorsConfig

DEFAULT_METHODS = "GET,HEAD,PUT,PATCH,POST,DELETE"  # the cors package's default
ALWAYS_EXPOSED = "Link"


def init_cors(app: Flask, config: AppConfig) -> None:
    """Answer cross-origin requests as ``backend.cors`` says (nothing when it is absent)."""
    options = config.cors
    if options is None:
        return
    policy = CorsPolicy(options)
    app.before_request(policy.preflight)
    app.after_request(policy.decorate)


class CorsPolicy:
    def __init__(self, options: CorsConfig):
        self.options = options
        self.matchers = (
            None if options.origin is None else [OriginPattern(p) for p in options.origin]
        )
        exposed = list(options.exposed_headers or [])
        if not any(h.lower() == ALWAYS_EXPOSED.lower() for h in exposed):
            exposed.append(ALWAYS_EXPOSED)
        self.exposed = ",".join(exposed)

    def allowed_origin(self) -> str | None:
        """The Access-Control-Allow-Origin value for this request, or None when refused."""
        if self.matchers is None:
            return "*"
        origin = request.headers.get("Origin", "")
        if origin and any(m.match(origin) for m in self.matchers):
            return origin
        return None

    def preflight(self) -> Response | None:
        if request.method != "OPTIONS" or self.options.preflight_continue:
            return None
        origin = self.allowed_origin()
        if origin is None:
            return None  # not ours to answer: the route (or Flask's OPTIONS) responds
        response = Response(status=self.options.options_success_status)
        self._common(response, origin)
        response.headers["Access-Control-Allow-Methods"] = ",".join(
            self.options.methods or [DEFAULT_METHODS]
        )
        if self.options.allowed_headers is not None:
            allowed = ",".join(self.options.allowed_headers)
        else:
            # Unconfigured: reflect what the browser asks for, like the cors package.
            allowed = request.headers.get("Access-Control-Request-Headers", "")
            response.vary.add("Access-Control-Request-Headers")
        if allowed:
            response.headers["Access-Control-Allow-Headers"] = allowed
        if self.options.max_age is not None:
            response.headers["Access-Control-Max-Age"] = str(self.options.max_age)
        del response.headers["Content-Type"]  # an empty answer, as the cors package sends
        response.headers["Content-Length"] = "0"
        return response

    def decorate(self, response: Response) -> Response:
        # Also runs on the preflight answered above, where it sets the same values again.
        origin = self.allowed_origin()
        if origin is None:
            return response
        self._common(response, origin)
        return response

    def _common(self, response: Response, origin: str) -> None:
        response.headers["Access-Control-Allow-Origin"] = origin
        if origin != "*":
            response.vary.add("Origin")
        if self.options.credentials:
            response.headers["Access-Control-Allow-Credentials"] = "true"
        response.headers["Access-Control-Expose-Headers"] = self.exposed


class OriginPattern:
    """One ``backend.cors.origin`` entry, matched like minimatch(nocase, noglobstar).

    ``*`` and ``?`` stay within one ``/``-separated part (so ``*`` alone matches no
    origin, as in Backstage), ``[...]`` is a character class, ``{a,b}`` alternatives,
    and a leading ``!`` negates.
    """

    def __init__(self, pattern: str):
        self.negated = False
        while pattern.startswith("!"):
            self.negated = not self.negated
            pattern = pattern[1:]
        alternatives = "|".join(_glob_to_regex(p) for p in _expand_braces(pattern))
        self.regex = re.compile(f"(?:{alternatives})", re.IGNORECASE)

    def match(self, origin: str) -> bool:
        return bool(self.regex.fullmatch(origin)) != self.negated


def _expand_braces(pattern: str) -> list[str]:
    """``a{b,c{d,e}}`` -> ab, acd, ace; ``{1..3}`` -> 1, 2, 3; unbalanced braces stay literal."""
    depth, start, i = 0, -1, 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 1  # an escaped character is never a brace
        elif char == "{":
            if depth == 0:
                start = i
            depth += 1
        elif char == "}" and depth:
            depth -= 1
            if depth == 0:
                parts = _split_alternatives(pattern[start + 1 : i])
                if parts is not None:
                    head, tail = pattern[:start], pattern[i + 1 :]
                    return [x for part in parts for x in _expand_braces(head + part + tail)]
        i += 1
    return [pattern]


def _split_alternatives(body: str) -> list[str] | None:
    if sequence := re.fullmatch(r"(-?\d+)\.\.(-?\d+)", body):
        first, last = int(sequence[1]), int(sequence[2])
        step = 1 if last >= first else -1
        return [str(n) for n in range(first, last + step, step)]
    parts, level, last_cut = [], 0, 0
    for j, char in enumerate(body):
        level += {"{": 1, "}": -1}.get(char, 0)
        if char == "," and level == 0:
            parts.append(body[last_cut:j])
            last_cut = j + 1
    parts.append(body[last_cut:])
    return parts if len(parts) > 1 else None  # "{x}" is literal in minimatch too


def _glob_to_regex(glob: str) -> str:
    out, i = [], 0
    while i < len(glob):
        char = glob[i]
        if char == "*":
            while i + 1 < len(glob) and glob[i + 1] == "*":  # noglobstar: ** is *
                i += 1
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "\\" and i + 1 < len(glob):
            i += 1
            out.append(re.escape(glob[i]))
        elif char == "[" and (end := glob.find("]", i + 2)) != -1:
            body = glob[i + 1 : end]
            if body[0] in "!^":
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)
