"""Record the real catalog-graph backend's answers, for test_catalog_graph_compat.py.

Backstage's ``@backstage/plugin-catalog-graph-backend`` is not published on npm
(the registry answers 404 for it; release 1.55 ships only the frontend), so this
script builds it from its source: give it a checkout of
``backstage/backstage``'s ``plugins/catalog-graph-backend`` (``--plugin-src``,
the directory holding ``src/``). It then

1. copies the reference backend (``shared/reference-backend``: Backstage 1.55's
   catalog backend from npm) to a temporary directory and installs its locked
   tree there plus ``@backstage/plugin-auth-backend`` and its guest provider
   (the plugin only answers requests with a *user* token, so the recorder signs
   in as the guest user);
2. transpiles the plugin's TypeScript with the ``typescript`` package of that
   install, adds the plugin to the backend's ``index.js``;
3. for each scenario (a catalog file and optional ``catalogGraph`` settings)
   starts the backend on a port in 7071-7079, waits until the catalog is
   ingested, sends every case to ``GET /api/catalog-graph/graph`` and records
   status and body; then stops the backend it started.

The answers go to ``tests/graph/data/catalog_graph_answers.json`` with the
scenario configuration, so the test can load the same catalog into our server
and compare, without Node. Run from the repository root::

    python tests/graph/record_catalog_graph.py --plugin-src /path/to/catalog-graph-backend

``--app-dir DIR`` keeps the installed backend in DIR (reused when run again).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
REFERENCE = SHARED / "reference-backend"
EXAMPLES = SHARED / "backstage" / "examples"
OUTPUT = Path(__file__).resolve().parent / "data" / "catalog_graph_answers.json"

# Scenarios: which catalog (files under shared/backstage/examples, wrapped in one
# Location) and which plugin settings; each case runs against each scenario that
# lists it.
SCENARIOS: dict[str, dict[str, Any]] = {
    "examples": {"targets": ["all.yaml"], "catalogGraph": {}},
    "examples-and-org": {"targets": ["all.yaml", "acme-corp.yaml"], "catalogGraph": {}},
    "limited": {
        "targets": ["all.yaml", "acme-corp.yaml"],
        "catalogGraph": {"limitEntities": 7, "maxDepth": 3},
    },
}

P = list[tuple[str, str]]


def _cases() -> list[dict[str, Any]]:
    component = "component:default/artist-lookup"
    www = "component:default/www-artist"
    system = "system:default/artist-engagement-portal"
    team = "group:default/team-a"
    cases: list[tuple[str, P, list[str]]] = [
        ("single root, everything", [("rootEntityRefs", component)], ["*"]),
        ("depth 0", [("rootEntityRefs", component), ("maxDepth", "0")], ["*"]),
        ("depth 1", [("rootEntityRefs", component), ("maxDepth", "1")], ["*"]),
        ("depth 2", [("rootEntityRefs", component), ("maxDepth", "2")], ["*"]),
        ("depth 1 from a system", [("rootEntityRefs", system), ("maxDepth", "1")], ["*"]),
        (
            "ownership relations",
            [("rootEntityRefs", team), ("relations", "ownerOf"), ("relations", "ownedBy")],
            ["*"],
        ),
        (
            "group hierarchy",
            [
                ("rootEntityRefs", "group:default/acme-corp"),
                ("relations", "parentOf"),
                ("relations", "hasMember"),
            ],
            ["*"],
        ),
        (
            "dependencies only",
            [("rootEntityRefs", www), ("relations", "dependsOn"), ("relations", "dependencyOf")],
            ["*"],
        ),
        (
            "api relations",
            [
                ("rootEntityRefs", www),
                ("relations", "consumesApi"),
                ("relations", "apiProvidedBy"),
                ("relations", "providesApi"),
                ("relations", "apiConsumedBy"),
            ],
            ["*"],
        ),
        (
            "system parts",
            [("rootEntityRefs", system), ("relations", "hasPart"), ("maxDepth", "1")],
            ["*"],
        ),
        ("kinds filter", [("rootEntityRefs", component), ("kinds", "component")], ["*"]),
        (
            "kinds filter, mixed case",
            [("rootEntityRefs", component), ("kinds", "Component"), ("kinds", "API")],
            ["*"],
        ),
        (
            "kinds and relations",
            [
                ("rootEntityRefs", system),
                ("kinds", "component"),
                ("kinds", "resource"),
                ("relations", "hasPart"),
                ("relations", "dependsOn"),
            ],
            ["*"],
        ),
        (
            "two roots",
            [("rootEntityRefs", component), ("rootEntityRefs", www), ("maxDepth", "1")],
            ["*"],
        ),
        (
            "same root twice",
            [("rootEntityRefs", component), ("rootEntityRefs", component), ("maxDepth", "1")],
            ["*"],
        ),
        ("unknown root", [("rootEntityRefs", "component:default/no-such-thing")], ["*"]),
        (
            "unknown and known root",
            [
                ("rootEntityRefs", "component:default/no-such-thing"),
                ("rootEntityRefs", component),
                ("maxDepth", "1"),
            ],
            ["*"],
        ),
        (
            "root not in canonical case",
            [("rootEntityRefs", "Component:default/Artist-Lookup")],
            ["*"],
        ),
        ("no root", [], ["*"]),
        ("unknown relation type", [("rootEntityRefs", component), ("relations", "nope")], ["*"]),
        ("unknown kind", [("rootEntityRefs", component), ("kinds", "nope")], ["*"]),
        (
            "dangling owner",
            [("rootEntityRefs", "api:default/hello-world"), ("maxDepth", "1")],
            ["*"],
        ),
        ("user owner", [("rootEntityRefs", "user:default/guest"), ("maxDepth", "2")], ["*"]),
        ("negative depth", [("rootEntityRefs", component), ("maxDepth", "-1")], ["*"]),
        ("non-numeric depth", [("rootEntityRefs", component), ("maxDepth", "abc")], ["*"]),
        ("fractional depth", [("rootEntityRefs", component), ("maxDepth", "1.7")], ["*"]),
        ("empty depth", [("rootEntityRefs", component), ("maxDepth", "")], ["*"]),
        (
            "unrelated parameter",
            [("rootEntityRefs", component), ("maxDepth", "1"), ("x", "1")],
            ["*"],
        ),
    ]
    return [
        {"name": name, "params": [list(pair) for pair in params], "scenarios": scenarios}
        for name, params, scenarios in cases
    ]


# Versions of the Backstage 1.55 line that fit the reference backend's locked tree.
AUTH_PACKAGES = [
    "@backstage/plugin-auth-backend@0.30.1",
    "@backstage/plugin-auth-backend-module-guest-provider@0.2.25",
]
AUTH_CONFIG = """auth:
  providers:
    guest:
      dangerouslyAllowOutsideDevelopment: true
"""


def _get(url: str, timeout: float = 30.0, token: str | None = None) -> tuple[int, Any]:
    headers = {"X-Requested-With": "XMLHttpRequest"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        request = urllib.request.Request(url, headers=headers)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        body = error.read()
        try:
            return error.code, json.loads(body)
        except ValueError:
            return error.code, body.decode(errors="replace")


def _wrapper(directory: Path, targets: list[str]) -> Path:
    path = directory / "catalog.yaml"
    lines = [
        "apiVersion: backstage.io/v1alpha1",
        "kind: Location",
        "metadata:",
        "  name: graph-compat",
        "spec:",
        "  targets:",
        *[f"    - {EXAMPLES / target}" for target in targets],
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _transpile(app_dir: Path, plugin_src: Path, out: Path) -> None:
    script = """
const ts = require('typescript');
const fs = require('fs');
const path = require('path');
const [src, out] = process.argv.slice(1);
function walk(dir) {
  for (const name of fs.readdirSync(dir)) {
    const file = path.join(dir, name);
    if (fs.statSync(file).isDirectory()) { walk(file); continue; }
    if (!file.endsWith('.ts') || file.endsWith('.test.ts')) continue;
    const js = ts.transpileModule(fs.readFileSync(file, 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022,
                         esModuleInterop: true },
    }).outputText;
    const target = path.join(out, path.relative(src, file)).replace(/\\.ts$/, '.js');
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(target, js);
  }
}
walk(src);
"""
    subprocess.run(
        ["node", "-e", script, str(plugin_src / "src"), str(out)], cwd=app_dir, check=True
    )


def _prepare(app: Path, plugin_src: Path) -> Path:
    app.mkdir(parents=True, exist_ok=True)
    for name in ("app-config.yaml", "app-config.processing.yaml"):
        shutil.copy(REFERENCE / name, app / name)
    (app / "app-config.auth.yaml").write_text(AUTH_CONFIG)
    if not (app / "node_modules" / "@backstage" / "plugin-auth-backend").is_dir():
        for name in ("package.json", "package-lock.json"):
            shutil.copy(REFERENCE / name, app / name)
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", *AUTH_PACKAGES], cwd=app, check=True
        )
    shutil.rmtree(app / "catalog-graph-backend", ignore_errors=True)
    _transpile(app, plugin_src, app / "catalog-graph-backend")
    index = (REFERENCE / "index.js").read_text()
    index = index.replace(
        "backend.start();",
        "// Added by record_catalog_graph.py: guest sign-in (the plugin wants user tokens)\n"
        "// and the catalog-graph backend plugin, built from source.\n"
        "backend.add(import('@backstage/plugin-auth-backend'));\n"
        "backend.add(import('@backstage/plugin-auth-backend-module-guest-provider'));\n"
        "backend.add(require('./catalog-graph-backend/index.js').default);\n\n"
        "backend.start();",
    )
    (app / "index.js").write_text(index)
    return app


def _wait_ingested(base: str, timeout: float = 180.0) -> int:
    """Until the entity and relation counts stop changing (Backstage has no done signal)."""
    deadline = time.monotonic() + timeout
    last: tuple[int, int] | None = None
    stable = 0
    while time.monotonic() < deadline:
        status, body = _get(f"{base}/api/catalog/entities?fields=kind,metadata.name,relations")
        if status == 200:
            current = (len(body), sum(len(e.get("relations") or []) for e in body))
            stable = stable + 1 if current == last and current[0] > 1 else 0
            last = current
            if stable >= 4:
                return current[0]
        time.sleep(1.0)
    raise TimeoutError(f"catalog not ingested after {timeout}s (last counts {last})")


def _run_scenario(
    app: Path,
    work: Path,
    name: str,
    scenario: dict[str, Any],
    port: int,
    cases: list[dict[str, Any]],
) -> dict[str, Any]:
    directory = work / name
    directory.mkdir()
    catalog_file = _wrapper(directory, scenario["targets"])
    configs = [
        "--config",
        str(app / "app-config.yaml"),
        "--config",
        str(app / "app-config.processing.yaml"),
        "--config",
        str(app / "app-config.auth.yaml"),
    ]
    if scenario["catalogGraph"]:
        extra = directory / "app-config.catalog-graph.yaml"
        extra.write_text(json.dumps({"catalogGraph": scenario["catalogGraph"]}))
        configs += ["--config", str(extra)]
    env = {
        **os.environ,
        "BACKSTAGE_PORT": str(port),
        "BACKSTAGE_CATALOG_FILE": str(catalog_file),
        "BACKSTAGE_PROCESSING_INTERVAL_SECONDS": "3600",
        "NODE_ENV": "production",
    }
    log = open(directory / "backend.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        ["node", str(app / "index.js"), *configs],
        cwd=app,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError((directory / "backend.log").read_text()[-3000:])
            try:
                if _get(f"{base}/.backstage/health/v1/readiness", 2)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        count = _wait_ingested(base)
        status, body = _get(f"{base}/api/auth/guest/refresh")
        if status != 200:
            raise RuntimeError(f"guest sign-in failed: {status} {body}")
        token = body["backstageIdentity"]["token"]
        answers = []
        for case in cases:
            if "*" not in case["scenarios"] and name not in case["scenarios"]:
                continue
            query = urllib.parse.urlencode([tuple(pair) for pair in case["params"]])
            status, body = _get(f"{base}/api/catalog-graph/graph?{query}", token=token)
            answers.append(
                {"name": case["name"], "params": case["params"], "status": status, "body": body}
            )
        return {"entities": count, "answers": answers}
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--plugin-src",
        type=Path,
        required=True,
        help="backstage/backstage's plugins/catalog-graph-backend (with src/)",
    )
    parser.add_argument(
        "--plugin-commit", default="unknown", help="commit of that source, for the record"
    )
    parser.add_argument("--port", type=int, default=7071, help="7071-7079")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--app-dir", type=Path, help="where to install the backend (kept, reused)")
    args = parser.parse_args()
    if not 7071 <= args.port <= 7079:
        parser.error("--port must be in 7071-7079")
    cases = _cases()
    with tempfile.TemporaryDirectory(prefix="catalog-graph-ref-") as tmp:
        work = Path(tmp)
        app = _prepare(args.app_dir or work / "backend", args.plugin_src.resolve())
        versions = json.loads((REFERENCE / "package.json").read_text())["dependencies"]
        recorded: dict[str, Any] = {
            "recordedWith": {
                "referenceBackend": versions,
                "plugin": "@backstage/plugin-catalog-graph-backend 0.1.0, built from "
                f"backstage/backstage plugins/catalog-graph-backend at {args.plugin_commit}",
                "signIn": AUTH_PACKAGES,
                "node": subprocess.run(
                    ["node", "--version"], capture_output=True, text=True
                ).stdout.strip(),
            },
            "scenarios": {},
        }
        for name, scenario in SCENARIOS.items():
            print(f"scenario {name} ...", file=sys.stderr)
            result = _run_scenario(app, work, name, scenario, args.port, cases)
            recorded["scenarios"][name] = {**scenario, **result}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(recorded, indent=1, sort_keys=False) + "\n")
    total = sum(len(s["answers"]) for s in recorded["scenarios"].values())
    print(f"wrote {args.output}: {total} answers", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
