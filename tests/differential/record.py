"""Re-record the reference answers of the differential test from the real Backstage backend.

    .venv/bin/python -m tests.differential.record [--port 7046]

Starts ``../shared/reference-backend`` (``start.sh``; installs its node dependencies
into ``$CONFORMANCE_CACHE_DIR`` on first use) with
``../shared/backstage/examples/all.yaml``, waits until its catalog has settled, sends
every request of :mod:`tests.differential.cases`, writes the normalised answers to
``tests/differential/reference.json`` and stops the backend again. Run it when the
cases or the examples change, and commit the result.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.differential.cases import CASES, run_cases

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
REFERENCE = HERE / "reference.json"


def shared_dir() -> Path:
    return Path(os.environ.get("SHARED") or REPO.parent / "shared").resolve()


def examples_dir() -> str:
    return os.path.realpath(shared_dir() / "backstage" / "examples")


def wait_settled(base_url: str, timeout: float = 180.0, quiet: float = 5.0) -> int:
    """Wait until the entity list and its relations stop changing; return the entity count."""
    deadline = time.monotonic() + timeout
    last: tuple[int, int] | None = None
    since = time.monotonic()
    while time.monotonic() < deadline:
        try:
            entities = requests.get(
                f"{base_url}/entities",
                params={"fields": "kind,metadata.namespace,metadata.name,relations"},
                timeout=10,
            ).json()
            state = (len(entities), sum(len(e.get("relations") or []) for e in entities))
        except (requests.RequestException, ValueError):
            state = None  # type: ignore[assignment]
        if state != last:
            last, since = state, time.monotonic()
        elif state and state[0] > 0 and time.monotonic() - since >= quiet:
            return state[0]
        time.sleep(0.5)
    raise TimeoutError(f"the catalog at {base_url} did not settle")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=7046, help="port for the reference backend")
    args = parser.parse_args()
    shared = shared_dir()
    examples = examples_dir()
    start = shared / "reference-backend" / "start.sh"
    stop = shared / "reference-backend" / "stop.sh"
    subprocess.run([str(start), f"{examples}/all.yaml", str(args.port)], check=True)
    try:
        base_url = f"http://127.0.0.1:{args.port}/api/catalog"
        count = wait_settled(base_url)
        answers, _ = run_cases(base_url, examples)
    finally:
        subprocess.run([str(stop), str(args.port)], check=False)
    document = {
        "about": "Answers of the Backstage reference backend (shared/reference-backend) "
        "to tests/differential/cases.py, normalised; re-record with "
        "python -m tests.differential.record",
        "entityCount": count,
        "requests": len(CASES),
        "answers": answers,
    }
    REFERENCE.write_text(json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    print(f"wrote {REFERENCE} ({len(CASES)} requests, {count} entities)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
