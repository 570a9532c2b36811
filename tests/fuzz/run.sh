#!/usr/bin/env bash
# Fuzzes the live GraphQL schema with schemathesis, anonymously and with a
# valid session. Fails on any 5xx and on any error without extensions.code.
# Usage: tests/fuzz/run.sh [path/to/gatehouse]   (SCHEMATHESIS=path/to/schemathesis)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$(realpath "${1:-target/debug/gatehouse}")
st=${SCHEMATHESIS:-schemathesis}
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port/graphql"

GATEHOUSE_LISTEN="127.0.0.1:$port" \
GATEHOUSE_DATABASE_URL="sqlite://$work/fuzz.db?mode=rwc" GATEHOUSE_MAIL_DIR="$work/mail" \
GATEHOUSE_LOGIN_MAX_FAILURES=1000000 GATEHOUSE_LOGIN_MAX_FAILURES_PER_IP=1000000 \
GATEHOUSE_REGISTER_MAX_PER_IP=1000000 \
  "$bin" serve >"$work/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 50); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 0.2
done

token=$(curl -sf "$url" -H 'content-type: application/json' \
  -d '{"query":"mutation { register(input: {email: \"fuzz@example.com\", password: \"correct horse battery\"}) { token } }"}' |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["data"]["register"]["token"])')

cd "$here"
export SCHEMATHESIS_HOOKS=hooks
# The two runs share nothing but the server (the anonymous one cannot end
# the session), and each is one Python process: side by side, on two cores.
"$st" run "$url" --checks no_5xx_and_coded_errors -n 200 --seed 42 >"$work/anonymous.log" 2>&1 &
anonymous=$!
"$st" run "$url" --checks no_5xx_and_coded_errors -n 200 --seed 42 \
  -H "Authorization: Bearer $token" --exclude-name-regex 'logout' >"$work/session.log" 2>&1 &
session=$!
status=0
wait "$anonymous" || status=1
wait "$session" || status=1
echo "--- schemathesis: anonymous"
cat "$work/anonymous.log"
echo "--- schemathesis: with a session (logout excluded so the session lives)"
cat "$work/session.log"
[ "$status" -eq 0 ]
echo "--- server log errors"
! grep -E ' ERROR |panicked' "$work/server.log"
