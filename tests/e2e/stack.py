"""The processes behind a browser test: the built frontend, serve.js, the reference Backstage
backend, and the driver that runs Chromium (README: "In the Backstage UI")."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("SHARED") or REPO.parent / "shared")  # may be read-only
BACKSTAGE_APP = SHARED / "backstage-app"
REFERENCE_BACKEND = SHARED / "reference-backend"
DRIVER = Path(__file__).with_name("driver.js")
ARTIFACTS = Path(os.environ.get("CATALOG_E2E_ARTIFACTS", REPO / "test-artifacts" / "e2e"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")

# Everything started here listens on 127.0.0.1:PORT_BASE..PORT_BASE+5 (default 7081-7086).
PORT_BASE = int(os.environ.get("CATALOG_E2E_PORT_BASE", "7081"))


def in_ci() -> bool:
    """CI, or run.sh: where a missing frontend is an error and not a reason to skip."""
    return any(
        os.environ.get(name, "").lower() in ("1", "true", "yes") for name in ("CI", "CATALOG_E2E")
    )


def app_dir() -> Path:
    """Where run.sh builds the frontend: a cache outside the clone, keyed by the lockfile."""
    if os.environ.get("BACKSTAGE_APP_DIR"):
        return Path(os.environ["BACKSTAGE_APP_DIR"])
    lock = hashlib.sha256((BACKSTAGE_APP / "app.yarn.lock").read_bytes()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "pycatalog-backstage-app" / lock


def missing_prerequisites() -> list[str]:
    missing = []
    if not (BACKSTAGE_APP / "serve.js").is_file():
        missing.append(f"the shared Backstage app scripts ({BACKSTAGE_APP})")
        return missing
    directory = app_dir()
    if not (directory / "dist" / "index.html").is_file():
        missing.append(f"the frontend build ({directory}/dist; tests/e2e/run.sh builds it)")
    if not (directory / "node_modules" / "playwright-core").is_dir():
        missing.append(f"playwright-core ({directory}/node_modules; tests/e2e/run.sh installs it)")
    if not shutil.which("node"):
        missing.append("node on PATH")
    if not Path(CHROMIUM).exists():
        missing.append(f"Chromium at {CHROMIUM} (apt-get install -y chromium)")
    return missing


class Process:
    """A child process with its output in a log file; stopped by its own pid only."""

    def __init__(self, name: str, command: list[str], log: Path, env: dict[str, str] | None = None):
        self.name = name
        self.log_path = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=REPO,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def wait_http(url: str, process: Process | None = None, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and not process.alive():
            raise RuntimeError(f"{process.name} exited early:\n{process.log()}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer 200 within {timeout}s")


def serve_app(name: str, port: int, args: list[str], directory: Path) -> Process:
    """serve.js on ``port``: the built frontend with its catalog retargeted by ``args``."""
    command = [
        "node",
        str(BACKSTAGE_APP / "serve.js"),
        "--port",
        str(port),
        "--dist",
        str(app_dir() / "dist"),
        *args,
    ]
    process = Process(f"serve.js ({name})", command, directory / f"serve-{name}.log")
    wait_http(f"http://127.0.0.1:{port}/", process, timeout=30)
    return process


@dataclass
class ReferenceBackend:
    """The real Backstage 1.55 backend (../shared/reference-backend) with its proxy plugin."""

    port: int
    run_dir: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "BACKSTAGE_RUN_DIR": str(self.run_dir)}

    def start(self, catalog_file: Path, target: str, app_origin: str) -> None:
        env = {
            **self.env,
            # /api/proxy/catalog-under-test forwards here.
            "CATALOG_UNDER_TEST_URL": target,
            # The app is served on its own port, not the backend's default origin :3000.
            "APP_CONFIG_backend_cors_origin": app_origin,
        }
        subprocess.run(
            [str(REFERENCE_BACKEND / "start.sh"), str(catalog_file), str(self.port)],
            env=env,
            check=True,
            timeout=300,
        )

    def log(self) -> str:
        path = self.run_dir / f"backstage-{self.port}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> None:
        subprocess.run(
            [str(REFERENCE_BACKEND / "stop.sh"), str(self.port)], env=self.env, check=False
        )


def run_driver(plan: dict[str, Any], out: Path, browsers: int = 1) -> list[Driver]:
    """Start tests/e2e/driver.js on ``plan`` in the background, its steps dealt out over
    ``browsers`` browser processes (the run is mostly waiting, so they overlap well)."""
    out.mkdir(parents=True, exist_ok=True)
    steps = plan["steps"]
    size = -(-len(steps) // browsers)
    drivers = []
    for part, start in enumerate(range(0, len(steps), size), 1):
        name = f"part{part}"
        chunk = {
            "out": str(out),
            "resultFile": f"result-{name}.json",
            "appDir": str(app_dir()),
            "chromium": CHROMIUM,
            **plan,
            "steps": steps[start : start + size],
        }
        plan_path = out / f"plan-{name}.json"
        plan_path.write_text(json.dumps(chunk, indent=2))
        with open(out / f"driver-{name}.log", "wb") as log:  # the child keeps its own fd
            process = subprocess.Popen(
                ["node", str(DRIVER), str(plan_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        drivers.append(Driver(process, out, name))
    return drivers


@dataclass
class Driver:
    process: subprocess.Popen[bytes]
    out: Path
    name: str

    def result(self, timeout: float) -> dict[str, Any]:
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        log = (self.out / f"driver-{self.name}.log").read_text(errors="replace")
        path = self.out / f"result-{self.name}.json"
        if self.process.returncode != 0 or not path.exists():
            raise RuntimeError(f"driver.js exited with {self.process.returncode}:\n{log[-3000:]}")
        result: dict[str, Any] = json.loads(path.read_text())
        return result

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()  # its Chromium goes with it (playwright's pipe closes)
            self.process.wait()


def merge_results(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One set-up's results from its browsers, steps in plan order."""
    return {
        "appUrl": parts[0]["appUrl"],
        "steps": [step for part in parts for step in part["steps"]],
        "requests": [r for part in parts for r in part["requests"]],
        "consoleErrors": [e for part in parts for e in part["consoleErrors"]],
    }
