#!/usr/bin/env bash
# The Backstage conformance suite (../shared/conformance) against a real `catalog serve`:
#   1. directly, with the official @backstage/catalog-client;
#   2. through the real Backstage backend's proxy (/api/proxy/catalog-under-test),
#      the way a Backstage frontend plugin reaches us.
# The server starts on a fresh SQLite database with the fixture as its one `file`
# location (the harness's start-up contract). Prints the pass counts; exits non-zero if
# any check fails, is skipped, or a step cannot run.
#
# Environment (all optional):
#   SHARED                  the shared folder (default: ../shared beside the clone); may be read-only
#   CONFORMANCE_CACHE_DIR   where the harness and the reference backend install their node
#                           dependencies (default ${XDG_CACHE_HOME:-$HOME/.cache}/backstage-catalog-conformance)
#   CONFORMANCE_PORT        our server's port (default: the first free one in 7141-7149)
#   CONFORMANCE_PROXY_PORT  the proxying Backstage backend's port (default: first free in 7044-7049)
#   CONFORMANCE_KEEP=1      keep the work folder (config, logs, outputs) afterwards
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO="$PWD"
SHARED="$(cd "${SHARED:-$REPO/../shared}" && pwd -P)"  # physical: the harness resolves links
FIXTURE="$SHARED/conformance/fixture"
PYTHON="$REPO/.venv/bin/python"
CATALOG="$REPO/.venv/bin/catalog"
export CONFORMANCE_CACHE_DIR="${CONFORMANCE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/backstage-catalog-conformance}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/catalog-conformance.XXXXXX")"
export BACKSTAGE_RUN_DIR="${BACKSTAGE_RUN_DIR:-$WORK/run}"

free_port() { # first port in [$1, $2] nobody listens on
  "$PYTHON" - "$1" "$2" <<'EOF'
import socket, sys
for port in range(int(sys.argv[1]), int(sys.argv[2]) + 1):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        print(port)
        break
else:
    sys.exit(f"no free port in {sys.argv[1]}-{sys.argv[2]}")
EOF
}
PORT="${CONFORMANCE_PORT:-$(free_port 7141 7149)}"
PROXY_PORT="${CONFORMANCE_PROXY_PORT:-$(free_port 7044 7049)}"

SERVER_PID=""
PROXY_STARTED=""
cleanup() {
  status=$?
  if [[ -n "$PROXY_STARTED" ]]; then
    "$SHARED/reference-backend/stop.sh" "$PROXY_PORT" >/dev/null 2>&1 || true
  fi
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [[ $status -ne 0 || "${CONFORMANCE_KEEP:-0}" == 1 ]]; then
    echo "conformance work folder (config, logs): $WORK" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

cat >"$WORK/app-config.yaml" <<EOF
backend:
  listen: {host: 127.0.0.1, port: $PORT}
  database: {url: "sqlite:///$WORK/catalog.sqlite"}
catalog:
  rules:
    - allow: [Component, API, Resource, System, Domain, Group, User, Location, Template]
  locations:
    - type: file
      target: $FIXTURE/all.yaml
  # The scenario registers fixture/extra/*.yaml through the API.
  allowedFileRoots: ["$FIXTURE"]
  # Nothing is re-read on a timer during the run (as the reference is configured).
  processingInterval: {hours: 1}
EOF

echo "== starting catalog serve on 127.0.0.1:$PORT"
"$CATALOG" serve --config "$WORK/app-config.yaml" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 240); do
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "catalog serve exited:" >&2
    tail -50 "$WORK/server.log" >&2
    exit 1
  fi
  if curl -sf "http://127.0.0.1:$PORT/.backstage/health/v1/readiness" >/dev/null; then
    break
  fi
  sleep 0.5
done

# Runs the harness against $1; prints its output, records "N passed, M failed".
run_checks() {
  local label="$1" url="$2" out="$WORK/$1.txt"
  echo "== conformance ($label): $url"
  set +e
  "$SHARED/conformance/run-against.sh" "$url" 2>&1 | tee "$out" | grep -v '^PASS '
  local code=${PIPESTATUS[0]}
  set -e
  local summary
  summary="$(tail -1 "$out")"
  if [[ ! "$summary" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
    echo "conformance ($label): no result line (exit $code)" >&2
    return 1
  fi
  local checks
  checks="$(grep -cE '^(PASS|FAIL) ' "$out" || true)"
  RESULTS+=("$label: $summary (${checks} checks reported)")
  if [[ $code -ne 0 || "${BASH_REMATCH[2]}" != 0 || "$checks" != "${BASH_REMATCH[1]}" ]]; then
    return 1
  fi
}

RESULTS=()
failed=0
run_checks direct "http://127.0.0.1:$PORT/api/catalog" || failed=1

echo "== starting the Backstage reference backend as a proxy on 127.0.0.1:$PROXY_PORT"
PROXY_STARTED=1
CATALOG_UNDER_TEST_URL="http://127.0.0.1:$PORT/api/catalog" \
  "$SHARED/reference-backend/start.sh" "$FIXTURE/all.yaml" "$PROXY_PORT"
run_checks proxy "http://127.0.0.1:$PROXY_PORT/api/proxy/catalog-under-test" || failed=1

echo "== conformance results"
printf '  %s\n' "${RESULTS[@]}"
if [[ $failed -ne 0 ]]; then
  echo "conformance FAILED" >&2
  exit 1
fi
echo "conformance passed"
