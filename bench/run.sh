#!/usr/bin/env bash
# Reproduces every figure in bench/results/ with one command:
#   bench/run.sh                      # Gatehouse on embedded SQLite, plus the peer
#   bench/run.sh --postgres URL       # Gatehouse on an empty PostgreSQL database
# Extra flags go to bench/bench.py (--duration 5s --repeats 3 ...).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release --locked --bin gatehouse
cargo bench --locked --bench argon2_limit --no-run
if [ ! -d bench/peers/better-auth/node_modules ]; then
  (cd bench/peers/better-auth && npm ci --no-audit --no-fund)
fi
exec python3 bench/bench.py "$@"
