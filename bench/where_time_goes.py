"""Where the time goes: samples the whole machine with `perf record -a`
(a software clock, so it works without hardware counters) while wrk sends
guarded `me` at 32 connections, then splits the samples by process and, for
Gatehouse, by what the code is doing. Called by bench.py --profile.

`compare` profiles the ceiling the same way and turns both into CPU time per
request (microseconds of either core), so what `me` costs beyond
`{ __typename }` can be read off line by line, down to the symbol."""

import json
import os
import re
import subprocess
import tempfile
import threading
import time
from pathlib import Path

LUA = Path(__file__).resolve().parent / "wrk" / "request.lua"

# First match wins; matched against "dso symbol".
CATEGORIES = [
    # SQLite's static functions carry no prefix; its file locks (fcntl)
    # are the only ones this process takes.
    ("SQLite engine and its file locks",
     r"sqlite3|libsqlite|rusqlite|pcache1|[vV]dbe[A-Z]|btree[A-Z]|pager[A-Z]|walIndex|walTry|unixShm|unixLock|unixUnlock"
     r"|allocateCursor|fcntl|posix_lock|flock64"),
    ("kernel: sockets, syscalls, scheduling", r"\[kernel"),
    ("sqlx driver (protocol, rows)", r"sqlx"),
    ("sea-orm and sea-query", r"sea_orm|sea_query"),
    ("GraphQL parse, validate, execute", r"async_graphql"),
    ("JSON", r"serde_json|serde::"),
    ("CORS layer", r"cors"),
    ("HTTP: hyper, axum, tower", r"hyper|httparse|axum|tower|http::|h2::"),
    ("tracing and the request log", r"tracing|request_log|uuid"),
    ("metrics", r"metrics"),
    ("async runtime", r"tokio|mio::|parking_lot|crossbeam|futures"),
    ("allocator and memcpy", r"malloc|free|realloc|memcpy|memmove|memset|_int_|alloc::"),
    ("token hash (SHA-256)", r"sha2|sha256"),
    ("time (chrono)", r"chrono"),
    ("Gatehouse's own code", r"gatehouse::"),
]


def classify(dso, symbol):
    text = f"{dso} {symbol}"
    for name, pattern in CATEGORIES:
        if re.search(pattern, text):
            return name
    return "other"


def threads_of(pid):
    return {int(t) for t in os.listdir(f"/proc/{pid}/task")}


def record(pid, url, body, token, seconds):
    """Profiles `seconds` of `me` at 32 connections; returns the shares (%)."""
    env = dict(os.environ, METHOD="POST", BODY=body, TOKEN=token)
    load = subprocess.Popen(["wrk", "-t", "2", "-c", "32", "-d", f"{seconds + 3}s", "-s", str(LUA), url],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    server_threads = set()
    stop = threading.Event()

    def watch():  # threads can come and go (sqlx workers): keep every id seen
        while not stop.is_set():
            server_threads.update(threads_of(pid))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch)
    watcher.start()
    time.sleep(1)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "perf.data"
        subprocess.run(["perf", "record", "-a", "-q", "-e", "cpu-clock", "-F", "999", "-o", str(data),
                        "--", "sleep", str(seconds)], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        report = subprocess.run(
            ["perf", "report", "-i", str(data), "--no-children", "--stdio", "-g", "none",
             "--sort", "pid,dso,sym", "--percent-limit", "0", "--full-source-path"],
            check=True, capture_output=True, text=True).stdout
    out, _ = load.communicate()
    stop.set()
    watcher.join()
    done = json.loads([line for line in out.splitlines() if line.startswith("{")][-1])
    profile = summarise(report, server_threads)
    profile["rps"] = done["requests"] / (done["duration_us"] / 1e6)
    return profile


LINE = re.compile(r"^\s*([\d.]+)%\s+(\d+):(\S.*?)\s{2,}(\S+)\s+\[(.)\]\s+(.*)$")


def summarise(report, server_threads):
    processes, inside, symbols, kinds = {}, {}, {}, {}
    for line in report.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        share, tid, comm, dso, _, symbol = float(m[1]), int(m[2]), m[3].strip(), m[4], m[5], m[6].strip()
        if tid in server_threads:
            process = "Gatehouse"
            category = classify(dso, symbol)
            inside[category] = inside.get(category, 0) + share
            key = symbol[:90]
            symbols[key] = symbols.get(key, 0) + share
            kinds[key] = category
        elif comm.startswith("postgres"):
            process = "PostgreSQL"
        elif comm.startswith("wrk"):
            process = "wrk (load generator)"
        elif comm.startswith("swapper"):
            process = "idle"
        else:
            process = "other processes"
        processes[process] = processes.get(process, 0) + share
    order = lambda d: dict(sorted(((k, round(v, 1)) for k, v in d.items()), key=lambda kv: -kv[1]))
    top = order(symbols)
    others = order({k: v for k, v in symbols.items() if kinds[k] == "other"})
    return {"machine": order(processes), "gatehouse": order(inside),
            "top_symbols": dict(list(top.items())[:15]),
            "top_other": dict(list(others.items())[:15]),
            # Unrounded and complete, for `compare`.
            "all_symbols": {f"{k} [{kinds[k]}]": v for k, v in symbols.items() if v >= 0.01}}


def compare(pid, url, ceiling_body, me_body, token, seconds, cores):
    """Profiles the ceiling, then `me`, and returns both as microseconds of
    CPU per request, by process, by category and by symbol, with `me`'s
    excess over the ceiling."""
    ceiling = record(pid, url, ceiling_body, "", seconds)
    me = record(pid, url, me_body, token, seconds)

    def per_request(profile, key):
        # A share of all samples on all cores, over a run at `rps`.
        scale = cores * 1e6 / profile["rps"] / 100
        return {k: v * scale for k, v in profile[key].items()}

    def table(key, limit=None):
        c, m = per_request(ceiling, key), per_request(me, key)
        rows = [(k, round(c.get(k, 0), 2), round(m.get(k, 0), 2), round(m.get(k, 0) - c.get(k, 0), 2))
                for k in set(c) | set(m)]
        rows.sort(key=lambda r: -r[3])
        return rows[:limit] if limit else rows

    return {"ceiling_rps": ceiling["rps"], "me_rps": me["rps"], "cores": cores,
            "machine_us": round(cores * 1e6 / ceiling["rps"], 2), "me_machine_us": round(cores * 1e6 / me["rps"], 2),
            "processes": table("machine"), "gatehouse": table("gatehouse"),
            "symbols": table("all_symbols", 40)}
