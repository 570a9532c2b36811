#!/usr/bin/env python3
"""Gatehouse's benchmark: drives the release binary and the Better Auth peer
with wrk in one session on one machine, and writes medians, ratios and a
chart to bench/results/. Run it through bench/run.sh."""

import argparse
import json
import os
import platform
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import where_time_goes

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
LUA = BENCH / "wrk" / "request.lua"
PEER = BENCH / "peers" / "better-auth"
EMAIL, PASSWORD = "bench@example.com", "correct horse battery"

ME = '{"query":"{ me { user { email } session { expiresAt } } }"}'
# An SPA's parallel requests on one session (issue 27's hot session).
HOT_ME = '{"query":"{ me { user { id email } session { expiresAt } } }"}'
CEILING = '{"query":"{ __typename }"}'
REFRESH = '{"query":"mutation { refreshSession { expiresAt } }"}'
LOGIN = json.dumps({
    "query": "mutation($i: LoginInput!) { login(input: $i) { token } }",
    "variables": {"i": {"email": EMAIL, "password": PASSWORD}},
})


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.2)
    sys.exit(f"{url} did not come up")


def post(url, body, token=None):
    request = urllib.request.Request(url, data=body.encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request) as response:
        return response.headers, json.load(response)


def wrk(url, connections, duration, body=None, token=None, method="POST"):
    env = dict(os.environ, METHOD=method, BODY=body or "", TOKEN=token or "")
    threads = str(min(2, connections))
    out = subprocess.run(
        ["wrk", "-t", threads, "-c", str(connections), "-d", duration, "--timeout", "10s",
         "-s", str(LUA), url],
        env=env, capture_output=True, text=True, check=True).stdout
    line = [l for l in out.splitlines() if l.startswith("{")][-1]
    r = json.loads(line)
    seconds = r["duration_us"] / 1e6
    ok = r["requests"] - r["non2xx"]
    return {"rps": ok / seconds, "p50_ms": r["p50_us"] / 1000, "p99_ms": r["p99_us"] / 1000,
            "non2xx": r["non2xx"], "socket_errors": r["socket_errors"], "requests": r["requests"]}


def median_of(runs):
    keys = ["rps", "p50_ms", "p99_ms"]
    result = {k: statistics.median(r[k] for r in runs) for k in keys}
    result["non2xx"] = sum(r["non2xx"] for r in runs)
    result["requests"] = sum(r["requests"] for r in runs)
    result["runs"] = len(runs)
    return result


def measure(label, url, conns, repeats, duration, **request):
    results = {}
    for c in conns:
        runs = [wrk(url, c, duration, **request) for _ in range(repeats)]
        results[c] = median_of(runs)
        m = results[c]
        print(f"  {label:<28} c={c:<4} {m['rps']:>9.1f} req/s  p50 {m['p50_ms']:.2f} ms  "
              f"p99 {m['p99_ms']:.2f} ms  non-2xx {m['non2xx']}", flush=True)
    return results


class Gatehouse:
    def __init__(self, binary, database_url, workdir):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ,
                   GATEHOUSE_LISTEN=f"127.0.0.1:{self.port}",
                   GATEHOUSE_DATABASE_URL=database_url,
                   GATEHOUSE_LOGIN_MAX_FAILURES="1000000",
                   GATEHOUSE_LOGIN_MAX_FAILURES_PER_IP="1000000",
                   GATEHOUSE_REGISTER_MAX_PER_IP="1000000",
                   RUST_LOG="warn")
        self.log = open(workdir / "gatehouse.log", "w")
        self.process = subprocess.Popen([binary, "serve"], env=env, stderr=self.log, stdout=self.log)
        wait_for(self.url + "/healthz")

    def peak_rss_mib(self):
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def reset_peak_rss(self):
        Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)


def seed_sessions_sql(count):
    """Sessions for a seed user, made in SQL: the bench user's are untouched."""
    return f"""
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count})
    INSERT INTO sessions (id, user_id, token_hash, created_at, last_activity_at, user_agent)
    SELECT randomblob(16), (SELECT id FROM users WHERE email = 'seed@example.com'),
           lower(hex(randomblob(32))), strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now'),
           strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now'), 'seed'
    FROM n"""


def pg_seed_sql(count):
    return f"""
    INSERT INTO sessions (id, user_id, token_hash, created_at, last_activity_at, user_agent)
    SELECT gen_random_uuid(), (SELECT id FROM users WHERE email = 'seed@example.com'),
           encode(sha256(random()::text::bytea || i::text::bytea), 'hex'), now(), now(), 'seed'
    FROM generate_series(1, {count}) AS i"""


def run_sql(database_url, sql):
    if database_url.startswith("sqlite"):
        path = database_url.split("://", 1)[1].split("?", 1)[0]
        with sqlite3.connect(path, timeout=30) as db:
            db.execute(sql)
    else:
        subprocess.run(["psql", database_url, "-q", "-c", sql], check=True)


def count_sessions(database_url):
    sql = "SELECT COUNT(*) FROM sessions"
    if database_url.startswith("sqlite"):
        path = database_url.split("://", 1)[1].split("?", 1)[0]
        with sqlite3.connect(path) as db:
            return db.execute(sql).fetchone()[0]
    out = subprocess.run(["psql", database_url, "-tAc", sql], check=True, capture_output=True, text=True)
    return int(out.stdout.strip())


def bench_gatehouse(args, workdir):
    database_url = args.postgres or f"sqlite://{workdir}/gatehouse.db?mode=rwc"
    server = Gatehouse(args.binary, database_url, workdir)
    graphql = server.url + "/graphql"
    register = json.dumps({"query": "mutation($i: RegisterInput!) { register(input: $i) { token } }",
                           "variables": {"i": {"email": EMAIL, "password": PASSWORD}}})
    token = post(graphql, register)[1]["data"]["register"]["token"]
    conns, repeats, d = args.connections, args.repeats, args.duration
    results = {}
    phases = set(args.phases)
    print("Gatehouse", flush=True)
    if phases == {"scaling"}:
        results["scaling"] = scaling(args, database_url, graphql, token)
        server.stop()
        return results
    if phases == {"hot"}:
        results["hot"] = hot_session(args, database_url, graphql, token, workdir)
        server.stop()
        return results
    results["ceiling"] = measure("{ __typename } (ceiling)", graphql, conns, repeats, d, body=CEILING)
    results["me"] = measure("me", graphql, conns, repeats, d, body=ME, token=token)
    if args.profile:
        results["profile"] = where_time_goes.record(server.process.pid, graphql, ME, token, args.profile)
    if args.profile_diff:
        results["profile_diff"] = where_time_goes.compare(server.process.pid, graphql, CEILING, ME, token,
                                                          args.profile_diff, os.cpu_count())
    if "full" not in phases:
        server.stop()
        return results
    results["refresh"] = measure("refreshSession", graphql, conns, repeats, d, body=REFRESH, token=token)
    results["login"] = measure("login", graphql, conns, repeats, d, body=LOGIN)

    # me at 32 connections while 256 connections flood login.
    server.reset_peak_rss()
    flood_seconds = int(d.rstrip("s")) * repeats + 4
    flood = subprocess.Popen(
        ["wrk", "-t", "1", "-c", "256", "-d", f"{flood_seconds}s", "--timeout", "10s", "-s", str(LUA), graphql],
        env=dict(os.environ, METHOD="POST", BODY=LOGIN, TOKEN=""),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2)
    results["me_under_flood"] = measure("me during login flood", graphql, [32], repeats, d, body=ME, token=token)
    flood_out, _ = flood.communicate()
    flood_line = json.loads([l for l in flood_out.splitlines() if l.startswith("{")][-1])
    results["flood"] = {"peak_rss_mib": server.peak_rss_mib(),
                        "login_requests": flood_line["requests"],
                        "login_refused_503": flood_line["non2xx"],
                        "seconds": flood_line["duration_us"] / 1e6}
    print(f"  flood: peak RSS {results['flood']['peak_rss_mib']:.1f} MiB, "
          f"{flood_line['requests']} logins sent, {flood_line['non2xx']} refused", flush=True)

    results["scaling"] = scaling(args, database_url, graphql, token)
    server.stop()
    return results


def hot_session(args, database_url, graphql, token, workdir, window="6s"):
    """All 32 connections on one session, in interleaved pairs of 6 s windows
    ({ __typename }, then me): the ratio of each pair, the median of them,
    and the worst p99 of any me window. On PostgreSQL, then a second node
    revokes the session while the first is under that load."""
    # Warm both up first (pools, plans, the guard's connections): the
    # windows measure the steady state.
    wrk(graphql, 32, "3s", body=CEILING)
    wrk(graphql, 32, "3s", body=HOT_ME, token=token)
    pairs = []
    for i in range(args.repeats):
        ceiling = wrk(graphql, 32, window, body=CEILING)
        me = wrk(graphql, 32, window, body=HOT_ME, token=token)
        ratio = me["rps"] / ceiling["rps"]
        pairs.append({"ceiling": ceiling, "me": me, "ratio": ratio})
        print(f"  hot session pair {i + 1}: ceiling {ceiling['rps']:.0f}/s, me {me['rps']:.0f}/s "
              f"({ratio:.2f}x), me p99 {me['p99_ms']:.2f} ms, non-2xx {me['non2xx']}", flush=True)
    result = {"pairs": pairs,
              "median_ratio": statistics.median(p["ratio"] for p in pairs),
              "worst_p99_ms": max(p["me"]["p99_ms"] for p in pairs)}
    print(f"  hot session: median {result['median_ratio']:.2f}x, worst me p99 "
          f"{result['worst_p99_ms']:.2f} ms", flush=True)
    if not database_url.startswith("sqlite"):
        result["revocation"] = cross_node_revocation(args, database_url, graphql, token, workdir)
    return result


def cross_node_revocation(args, database_url, graphql, token, workdir):
    """A second node revokes the hot session mid-load: how long the
    revocation takes, and whether the first node refuses the token at once."""
    other = Gatehouse(args.binary, database_url, workdir)
    other_graphql = other.url + "/graphql"
    login = post(other_graphql, LOGIN)[1]["data"]["login"]["token"]
    session_id = post(graphql, '{"query":"{ me { session { id } } }"}', token)[1]["data"]["me"]["session"]["id"]
    load = subprocess.Popen(
        ["wrk", "-t", "2", "-c", "32", "-d", "6s", "--timeout", "10s", "-s", str(LUA), graphql],
        env=dict(os.environ, METHOD="POST", BODY=HOT_ME, TOKEN=token),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3)

    def revoke(session):
        body = json.dumps({"query": "mutation($id: ID!) { revokeSession(input: {sessionId: $id}) "
                                    "{ session { id } } }", "variables": {"id": session}})
        started = time.perf_counter()
        answer = post(other_graphql, body, login)[1]
        assert "errors" not in answer, answer
        return (time.perf_counter() - started) * 1000

    # A first revocation (of a spare session) warms the second node's pool.
    spare = post(graphql, LOGIN)[1]["data"]["login"]["token"]
    spare_id = post(graphql, '{"query":"{ me { session { id } } }"}', spare)[1]["data"]["me"]["session"]["id"]
    first_ms = revoke(spare_id)
    revoke_ms = revoke(session_id)
    try:
        post(graphql, ME, token)
        refused_after = False
    except urllib.error.HTTPError as refused:
        refused_after = refused.code == 401
    load.communicate()
    other.stop()
    print(f"  cross-node revocation under the hot load: {revoke_ms:.1f} ms (a first one, cold: "
          f"{first_ms:.1f} ms); the loaded node refused the token next: {refused_after}", flush=True)
    return {"revoke_ms": revoke_ms, "first_revoke_ms": first_ms, "refused_next_request": refused_after}


def scaling(args, database_url, graphql, token):
    """me latency against the size of the sessions table."""
    sqlite = database_url.startswith("sqlite")
    run_sql(database_url, "INSERT INTO users (id, email, password_hash, created_at, updated_at) VALUES "
            + ("(randomblob(16)" if sqlite else "(gen_random_uuid()")
            + ", 'seed@example.com', 'x', '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00')")
    seed = seed_sessions_sql if sqlite else pg_seed_sql
    results = {}
    # The first cell must not be taken right after start: warm up first.
    wrk(graphql, 32, "5s", body=ME, token=token)
    for target in args.rows:
        have = count_sessions(database_url)
        if have < target:
            run_sql(database_url, seed(target - have))
            # A table just grown by a bulk insert is what autovacuum works on
            # next; measure the steady state, not the two competing.
            run_sql(database_url, "ANALYZE" if sqlite else "VACUUM ANALYZE sessions")
        rows = count_sessions(database_url)
        results[rows] = measure(f"me with {rows:,} sessions", graphql, [32], args.repeats, args.duration,
                                body=ME, token=token)[32]
    return results


def bench_peer(args, workdir):
    if not (PEER / "node_modules").exists():
        print("Better Auth peer SKIPPED: run `npm ci` in bench/peers/better-auth", flush=True)
        return None
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(workdir / "peer.log", "w")
    peer = subprocess.Popen(["node", "server.mjs"], cwd=PEER, stdout=log, stderr=log,
                            env=dict(os.environ, PORT=str(port), DB=str(workdir / "peer.db"),
                                     NODE_ENV="production"))
    try:
        wait_for(url + "/api/auth/ok")
        body = json.dumps({"email": EMAIL, "password": PASSWORD, "name": "Bench"})
        post(url + "/api/auth/sign-up/email", body)
        headers, _ = post(url + "/api/auth/sign-in/email", json.dumps({"email": EMAIL, "password": PASSWORD}))
        token = headers["set-auth-token"]
        conns, repeats, d = args.connections, args.repeats, args.duration
        print("Better Auth", flush=True)
        return {
            "get_session": measure("get-session", url + "/api/auth/get-session", conns, repeats, d,
                                   token=token, method="GET"),
            "sign_in": measure("sign-in/email", url + "/api/auth/sign-in/email", conns, repeats, d,
                               body=json.dumps({"email": EMAIL, "password": PASSWORD})),
        }
    finally:
        peer.terminate()
        peer.wait(timeout=30)


def argon2_limit():
    out = subprocess.run(["cargo", "bench", "--quiet", "--bench", "argon2_limit"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    result = json.loads([l for l in out.splitlines() if l.startswith("{")][-1])
    print(f"argon2id limit: {result['per_second']:.1f} verifications/s on {result['cores']} cores", flush=True)
    return result


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), platform.processor())
    mem = next(l.split()[1] for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal"))
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0]
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(int(mem) / 1024 / 1024, 1),
            "kernel": platform.release(), "wrk": wrk_version, "node": node}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=str(ROOT / "target" / "release" / "gatehouse"))
    parser.add_argument("--postgres", help="a PostgreSQL URL (an empty database) instead of SQLite")
    parser.add_argument("--duration", default="5s")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 32, 256])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000, 1_000_000])
    parser.add_argument("--out", default=str(BENCH / "results"))
    parser.add_argument("--label", help="names the results: DATE-LABEL.{json,md,svg}")
    parser.add_argument("--phases", nargs="+", default=["full"], choices=["full", "guard", "scaling", "hot"],
                        help="guard: only the ceiling and me (a lever's quick check); scaling: only me against "
                             "table size; hot: one session on 32 connections, interleaved with the ceiling")
    parser.add_argument("--no-peer", action="store_true", help="skip Better Auth")
    parser.add_argument("--no-argon2", action="store_true", help="skip the argon2 limit (and its build)")
    parser.add_argument("--profile", type=int, default=0, metavar="SECONDS",
                        help="also profile the whole machine with perf during me at 32 connections")
    parser.add_argument("--profile-diff", type=int, default=0, metavar="SECONDS",
                        help="also profile the ceiling and me the same way, as CPU time per request, and "
                             "list what me spends beyond the ceiling")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: apt-get install wrk")

    started = datetime.now(timezone.utc)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        report = {
            "started": started.isoformat(timespec="seconds"),
            "database": "postgresql" if args.postgres else "sqlite",
            "machine": machine(),
            "settings": {"duration": args.duration, "repeats": args.repeats, "connections": args.connections},
            "argon2": None if args.no_argon2 else argon2_limit(),
            "gatehouse": bench_gatehouse(args, workdir),
            "peer": None if args.no_peer else bench_peer(args, workdir),
        }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{started:%Y-%m-%d}-{args.label or report['database']}"
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    if "ceiling" in report["gatehouse"]:
        subprocess.run([sys.executable, str(BENCH / "report.py"), str(out / f"{stem}.json")], check=True)


if __name__ == "__main__":
    main()
