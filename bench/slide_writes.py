#!/usr/bin/env python3
"""The slide's cost on PostgreSQL at 10^6 active sessions: pgbench sends the
guard's own activity UPDATE (by primary key, live and forward-only) at the
rate 10^6 active sessions need at two slide granularities, against a
sessions table of 10^6 rows, and reads what the primary achieved: writes
per second, latency, and WAL bytes per write. Results go to
bench/results/DATE-slide-writes.json; bench/README.md and the README's
capacity model quote them.

    python3 bench/slide_writes.py postgres://user:pass@127.0.0.1:5432/empty_db

The database must be empty: the script migrates it with the debug binary."""

import argparse
import json
import os
import re
import subprocess
import tempfile
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PGBENCH = "/usr/lib/postgresql/15/bin/pgbench"
SESSIONS = 1_000_000

# The guard's slide, as src/repo/sessions.rs writes it (standard policy:
# 30 min idle, 12 h absolute), on a row picked at random.
SLIDE = """\\set n random(1, {sessions})
UPDATE sessions SET last_activity_at = now()
 WHERE id = (SELECT id FROM slide_targets WHERE n = :n)
   AND revoked_at IS NULL AND end_recorded = false
   AND created_at > now() - interval '12 hours'
   AND last_activity_at > now() - interval '30 minutes'
   AND last_activity_at < now();
"""


def psql(url, sql):
    out = subprocess.run(["psql", url, "-qtAc", sql], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def seed(url, binary):
    subprocess.run([binary, "migrate"], env=dict(os.environ, GATEHOUSE_DATABASE_URL=url,
                                                GATEHOUSE_SECRET_KEY="bench:" + "A" * 43 + "="),
                   check=True)
    psql(url, "INSERT INTO users (id, email, password_hash, credential_version, created_at, updated_at) "
              "VALUES (gen_random_uuid(), 'seed@example.com', 'x', 0, now(), now())")
    psql(url, f"""INSERT INTO sessions (id, user_id, token_hash, created_at, last_activity_at, user_agent)
        SELECT gen_random_uuid(), (SELECT id FROM users), encode(sha256(i::text::bytea), 'hex'),
               now(), now(), 'seed' FROM generate_series(1, {SESSIONS}) AS i""")
    psql(url, "CREATE TABLE slide_targets AS SELECT row_number() OVER () AS n, id FROM sessions")
    psql(url, "CREATE UNIQUE INDEX ON slide_targets (n)")
    psql(url, "VACUUM ANALYZE")


def run(url, rate, seconds, clients):
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write(SLIDE.format(sessions=SESSIONS))
    wal_before = int(psql(url, "SELECT wal_bytes FROM pg_stat_wal"))
    updated_before = int(psql(url, "SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = 'sessions'"))
    out = subprocess.run(
        [PGBENCH, "-n", "-f", script.name, "-c", str(clients), "-j", "2", "-T", str(seconds),
         "-R", str(rate), "-P", "5", url],
        check=True, capture_output=True, text=True).stdout
    os.unlink(script.name)
    psql(url, "SELECT pg_stat_force_next_flush()")
    wal = int(psql(url, "SELECT wal_bytes FROM pg_stat_wal")) - wal_before
    updated = int(psql(url, "SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = 'sessions'")) - updated_before
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))
    latency = float(re.search(r"latency average = ([\d.]+) ms", out).group(1))
    lag = re.search(r"schedule lag: avg ([\d.]+)", out)
    return {"asked_per_s": rate, "achieved_per_s": tps, "latency_ms": latency,
            "schedule_lag_ms": float(lag.group(1)) if lag else None,
            "rows_updated": updated, "wal_bytes_per_write": wal / max(updated, 1),
            "wal_mib_per_s": wal / seconds / 2**20}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--binary", default=str(ROOT / "target" / "debug" / "gatehouse"))
    parser.add_argument("--granularities", type=int, nargs="+", default=[60, 300])
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    seed(args.url, args.binary)
    report = {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "sessions": SESSIONS, "clients": args.clients, "runs": {}}
    for g in args.granularities:
        rate = SESSIONS // g
        result = run(args.url, rate, args.seconds, args.clients)
        report["runs"][f"{g}s"] = result
        print(f"granularity {g:>4} s: asked {rate:>6}/s, achieved {result['achieved_per_s']:>8.0f}/s, "
              f"latency {result['latency_ms']:.2f} ms, lag {result['schedule_lag_ms']} ms, "
              f"{result['wal_bytes_per_write']:.0f} WAL bytes/write, {result['wal_mib_per_s']:.1f} MiB/s",
              flush=True)
    out = ROOT / "bench" / "results" / f"{datetime.now():%Y-%m-%d}-slide-writes.json"
    out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
