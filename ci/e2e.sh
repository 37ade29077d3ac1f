#!/usr/bin/env bash
# Conformance and browser checks against a real gateway process (issue 10):
#
#   1. openapi.yaml is a valid OpenAPI 3.1 document (openapi-spec-validator)
#   2. GraphQL over HTTP: graphql-http's server audits, MUST and SHOULD (ci/graphql-http-audit.mjs)
#   3. GraphiQL works in a browser: headless Chromium via playwright-core (ci/graphiql-browser.mjs)
#   4. the REST API keeps its contract: schemathesis against /api/v1 with openapi.yaml
#
# It starts the gateway on its embedded default (built-in Graph emulator, no config) on a
# free loopback port, runs every check even when one fails, prints how long each took,
# and exits non-zero if any failed, printing the gateway's log. The gateway is stopped on
# every exit. Usage: ci/e2e.sh (from anywhere; `.ci/run` runs it after the tests).
#
# Installs what it needs the first time, then only when a pin changes:
#   ci/node_modules  (npm ci, from ci/package-lock.json)
#   target/ci-venv   (pip, from ci/requirements.txt)
#   /usr/bin/chromium (apt, Debian's package; needs root) unless CHROMIUM names another
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n--- e2e: %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }
die() { printf 'e2e: %s\n' "$*" >&2; exit 1; }

# Demo user of the emulator's tenant (seed 42), whose name tops the org-chart answer.
EXPECT_NAME="${EXPECT_NAME:-Tamsin Greaves}"
# Test cases per operation: the schemathesis step takes about a minute and a half on 2 cores.
SCHEMATHESIS_MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-25}"
# Debian's package by default; another Chromium or Chrome binary may be named instead.
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
VENV=target/ci-venv
BIN=target/debug/m365-gateway

# The gateway must run on the embedded default, whatever this shell has set.
while read -r name; do unset "$name"; done < <(compgen -e | grep '^M365GW_' || true)
# Except one thing: schemathesis sends thousands of requests as one caller, far past a
# caller's rate limit; the limits have their own tests (tests/api/rate_limit.rs).
export M365GW_RATE_LIMIT__ENABLED=false

# sha256 of a file, to notice a changed pin.
digest() { sha256sum "$1" | cut -d' ' -f1; }

step "tools"
command -v node >/dev/null || die "node is not installed"
command -v npm >/dev/null || die "npm is not installed"
command -v python3 >/dev/null || die "python3 is not installed"
cargo build --quiet --bin m365-gateway

if [[ "$(cat ci/node_modules/.lock-digest 2>/dev/null)" != "$(digest ci/package-lock.json)" ]]; then
  echo "installing ci/node_modules (npm ci)"
  # playwright-core downloads no browser; this keeps any helper from trying.
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix ci --no-audit --no-fund --loglevel=error
  digest ci/package-lock.json > ci/node_modules/.lock-digest
fi

if [[ ! -x "$CHROMIUM" ]]; then
  [[ "$CHROMIUM" == /usr/bin/chromium ]] || die "CHROMIUM=$CHROMIUM is not an executable"
  [[ $EUID -eq 0 ]] || die "/usr/bin/chromium is missing; install Debian's chromium package (as root: apt-get install chromium) or set CHROMIUM to a Chromium or Chrome binary"
  echo "installing Debian's chromium"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

if [[ "$(cat "$VENV/.requirements-digest" 2>/dev/null)" != "$(digest ci/requirements.txt)" ]]; then
  echo "installing $VENV (pip, ci/requirements.txt)"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r ci/requirements.txt
  digest ci/requirements.txt > "$VENV/.requirements-digest"
fi

step "gateway"
# A free loopback port: bind port 0, read it back, release it.
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
mkdir -p target/e2e
LOG=target/e2e/gateway.log   # kept after the run, for a look at what the gateway said
"$BIN" serve --listen "127.0.0.1:$PORT" >"$LOG" 2>&1 &
GATEWAY_PID=$!

failed=()
cleanup() {
  local status=$?
  kill "$GATEWAY_PID" 2>/dev/null && wait "$GATEWAY_PID" 2>/dev/null || true
  if [[ $status -ne 0 ]]; then
    printf '\n--- e2e: gateway log (%s)\n' "$LOG"
    cat "$LOG"
  fi
}
trap cleanup EXIT

deadline=$((SECONDS + 60))
until curl -fsS -o /dev/null "$BASE/readyz" 2>/dev/null; do
  kill -0 "$GATEWAY_PID" 2>/dev/null || die "the gateway exited before it was ready"
  ((SECONDS < deadline)) || die "the gateway was not ready at $BASE/readyz within 60 s"
  sleep 0.5
done
TOKEN=$("$BIN" dev-token)
echo "gateway ready at $BASE (pid $GATEWAY_PID)"

timings=()
# Runs one check, records its time, and notes a failure without stopping the others.
check() {
  local name=$1
  shift
  step "$name"
  local start=$SECONDS
  if "$@"; then
    timings+=("$(printf '%-28s %4ds  ok' "$name" $((SECONDS - start)))")
  else
    timings+=("$(printf '%-28s %4ds  FAILED' "$name" $((SECONDS - start)))")
    failed+=("$name")
  fi
}

check "OpenAPI 3.1 validation" \
  "$VENV/bin/openapi-spec-validator" --schema 3.1 openapi.yaml

check "graphql-http audit" \
  env GATEWAY_URL="$BASE" GATEWAY_TOKEN="$TOKEN" node ci/graphql-http-audit.mjs

check "GraphiQL in Chromium" \
  env GATEWAY_URL="$BASE" GATEWAY_TOKEN="$TOKEN" EXPECT_NAME="$EXPECT_NAME" \
  CHROMIUM="$CHROMIUM" SCREENSHOT=target/graphiql.png node ci/graphiql-browser.mjs

# Checks: no 5xx, and every status, content type and body is one openapi.yaml documents.
# Positive and negative inputs (mode all), the emulator's known identifiers mixed in
# (ci/schemathesis.toml), a fixed seed so a failure can be replayed. Nothing is excluded:
# every route, mutating ones included, runs against the emulator. It runs in target/e2e,
# where schemathesis and hypothesis leave their caches.
schemathesis() {
  (cd target/e2e && "../ci-venv/bin/st" --config-file ../../ci/schemathesis.toml run ../../openapi.yaml \
    --url "$BASE" \
    --header "Authorization: Bearer $TOKEN" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --max-examples "$SCHEMATHESIS_MAX_EXAMPLES" \
    --seed 1 \
    --request-timeout 30 \
    --generation-database none \
    --no-color)
}
check "schemathesis (REST API)" schemathesis

step "summary"
printf '%s\n' "${timings[@]}"
if ((${#failed[@]})); then
  die "failed: ${failed[*]}"
fi
echo "e2e: all checks passed"
