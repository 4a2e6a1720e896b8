#!/usr/bin/env bash
# Browser tests: the real Backstage 1.55 frontend, in headless Chromium, against
# `catalog serve` on the sample catalog; same origin, through the real Backstage backend's
# proxy, and cross-origin with CORS (tests/e2e/test_backstage_ui.py). Called by .ci/run.
#
#   1. installs Chromium when it is missing (Debian: apt-get install -y chromium);
#   2. builds the frontend with ../shared/backstage-app/setup.sh into a cache outside the
#      clone, keyed by its lockfile, and skips that when the cached build is complete;
#   3. runs the tests (they never skip here: CATALOG_E2E=1 turns a missing build into a
#      failure). Screenshots, logs and the list of every catalog request the frontend
#      made go to test-artifacts/e2e/.
#
# Environment (all optional):
#   SHARED                the shared folder (default ../shared beside the clone; may be read-only)
#   BACKSTAGE_APP_DIR     the frontend build (default: ${XDG_CACHE_HOME:-$HOME/.cache}/
#                         pycatalog-backstage-app/<first 16 hex of sha256(app.yarn.lock)>)
#   CONFORMANCE_CACHE_DIR node_modules of the reference backend (its deps.sh default)
#   CATALOG_E2E_PORT_BASE first of the 6 ports used (default 7081, so 7081-7086)
#   CATALOG_E2E_DOC_SHOTS folder for the README screenshots (e.g. docs/screenshots)
#   extra arguments go to pytest (e.g. -k same-origin)
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO="$PWD"
SHARED="$(cd "${SHARED:-$REPO/../shared}" && pwd)"
export SHARED
APP_SRC="$SHARED/backstage-app"
started=$(date +%s)
stamp() { echo "[e2e $(($(date +%s) - started))s] $*"; }

# 0. The project's venv (as .ci/run makes it; here when run on its own).
if [[ ! -x .venv/bin/python ]]; then
  "${PYTHON:-python3.11}" -m venv .venv
  .venv/bin/python -m pip install --quiet -e '.[dev]'
fi

# 1. Chromium (playwright-core drives the system browser; it downloads none).
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$CHROMIUM" ]]; then
  stamp "installing chromium"
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
"$CHROMIUM" --version 2>/dev/null | head -n 1 ||
  { echo "no working Chromium at $CHROMIUM" >&2; exit 1; }
node --version >/dev/null || { echo "node (>= 20) and npm are needed on PATH" >&2; exit 1; }

# 2. The frontend build, cached outside the clone. setup.sh skips the steps whose results
#    exist but always rebuilds the frontend (~20 s); a stamp of its inputs skips even that.
LOCK_HASH="$(sha256sum "$APP_SRC/app.yarn.lock" | cut -c1-16)"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/pycatalog-backstage-app"
export BACKSTAGE_APP_DIR="${BACKSTAGE_APP_DIR:-$CACHE_ROOT/$LOCK_HASH}"
mkdir -p "$BACKSTAGE_APP_DIR"
INPUTS="$(cd "$APP_SRC" && cat setup.sh app-config.e2e.yaml app.yarn.lock package.json \
  package-lock.json | sha256sum | cut -c1-64)"
STAMP_FILE="$BACKSTAGE_APP_DIR/.pycatalog-build"
exec 9>"$BACKSTAGE_APP_DIR.lock" # one build at a time per cache entry
flock 9
if [[ -f "$STAMP_FILE" && "$(cat "$STAMP_FILE")" == "$INPUTS" &&
  -f "$BACKSTAGE_APP_DIR/dist/index.html" &&
  -d "$BACKSTAGE_APP_DIR/node_modules/playwright-core" ]]; then
  stamp "frontend build cached in $BACKSTAGE_APP_DIR"
else
  stamp "building the Backstage frontend into $BACKSTAGE_APP_DIR"
  rm -f "$STAMP_FILE"
  "$APP_SRC/setup.sh" "$BACKSTAGE_APP_DIR"
  echo "$INPUTS" >"$STAMP_FILE"
  # Builds for older lockfiles are 1.6 GB each: drop those no run is using (locked).
  for old in "$CACHE_ROOT"/*; do
    name="$(basename "$old")"
    if [[ -d "$old" && "$name" =~ ^[0-9a-f]{16}$ && "$name" != "$LOCK_HASH" ]]; then
      (flock -n 8 && rm -rf "$old") 8>"$old.lock" || true
    fi
  done
  stamp "frontend built"
fi
flock -s 9 # shared while the tests serve the build: no rebuild under them

# 3. The tests.
stamp "running the browser tests"
# Only the browser tests: test_cors.py runs with the rest of the suite.
CATALOG_E2E=1 .venv/bin/python -m pytest tests/e2e -m browser -q -p no:cacheprovider "$@"
if [[ -n "${CATALOG_E2E_DOC_SHOTS:-}" ]] && command -v pngquant >/dev/null; then
  # 256 colours are plenty for UI screenshots and make them a third of the size.
  pngquant --force --skip-if-larger --ext .png --quality 70-95 \
    "$CATALOG_E2E_DOC_SHOTS"/*.png || true
fi
stamp "done; screenshots and request lists in test-artifacts/e2e/"
