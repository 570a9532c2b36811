#!/usr/bin/env python3
"""Turns one bench/results/*.json into a Markdown report and an SVG chart
beside it. Usage: bench/report.py bench/results/DATE-DB.json"""

import json
import math
import sys
from pathlib import Path

COLOURS = {1: "#9ecae1", 32: "#4292c6", 256: "#08519c"}


def rows(report):
    """(label, results-by-connections) for every measured operation."""
    g, p = report["gatehouse"], report["peer"] or {}
    out = [("{ __typename } (ceiling)", g["ceiling"]), ("Gatehouse me", g["me"])]
    if "refresh" in g:
        out += [("Gatehouse refreshSession", g["refresh"]), ("Gatehouse login", g["login"])]
    if p:
        out += [("Better Auth get-session", p["get_session"]), ("Better Auth sign-in", p["sign_in"])]
    return out


def by_conn(results, conn):
    return results.get(str(conn)) or results.get(conn)


# Performance round 2 (issue 16): the guard's share of the ceiling per database.
ME_RATIO = {"sqlite": 0.6, "postgresql": 0.4}


def targets(report):
    g, p = report["gatehouse"], report["peer"]
    argon = report["argon2"]["per_second"] if report.get("argon2") else None
    me32, ceiling32 = by_conn(g["me"], 32), by_conn(g["ceiling"], 32)
    best = lambda results: max(r["rps"] for r in results.values())
    bound = ME_RATIO[report["database"]]
    out = [(f"guarded me ≥ {bound} × ceiling (32 connections)", me32["rps"] / ceiling32["rps"], bound, "×"),
           ("me p99 < 10 ms at 32 connections", me32["p99_ms"], 10, "ms<")]
    if p:
        out.append(("guarded me ≥ 20 × Better Auth get-session (best of each)",
                    best(g["me"]) / best(p["get_session"]), 20, "×"))
    if "login" in g and argon:
        out.append(("login ≥ 0.8 × argon2 limit (best)", best(g["login"]) / argon, 0.8, "×"))
    if "login" in g and p:
        out.append(("login ≥ 2 × Better Auth sign-in (best of each)", best(g["login"]) / best(p["sign_in"]), 2, "×"))
    if "flood" in g:
        flood = by_conn(g["me_under_flood"], 32)
        out.append(("me p99 ≤ 50 ms during a 256-connection login flood", flood["p99_ms"], 50, "ms≤"))
        out.append(("peak server memory ≤ 256 MiB during the flood", g["flood"]["peak_rss_mib"], 256, "MiB≤"))
    scaling = sorted(((int(k), v) for k, v in g.get("scaling", {}).items()))
    if len(scaling) >= 2:
        (small_n, small), (big_n, big) = scaling[0], scaling[-1]
        out.append((f"me p50 flat within 1.3× from {small_n:,} to {big_n:,} sessions",
                    big["p50_ms"] / small["p50_ms"], 1.3, "×≤"))
        out.append((f"me req/s flat within 1.3× from {small_n:,} to {big_n:,} sessions",
                    small["rps"] / big["rps"], 1.3, "×≤"))
    return out


def profile_tables(profile):
    lines = ["", "## Where the time goes (perf, whole machine, me at 32 connections)", "",
             "Share of all CPU samples on both cores.", "", "| process | share |", "|---|---|"]
    lines += [f"| {k} | {v:.1f}% |" for k, v in profile["machine"].items()]
    lines += ["", "Inside Gatehouse:", "", "| what | share of machine |", "|---|---|"]
    lines += [f"| {k} | {v:.1f}% |" for k, v in profile["gatehouse"].items()]
    lines += ["", "Top symbols in Gatehouse:", "", "| symbol | share |", "|---|---|"]
    lines += [f"| `{k}` | {v:.1f}% |" for k, v in profile["top_symbols"].items()]
    if profile.get("top_other"):
        lines += ["", "Top symbols in \"other\":", "", "| symbol | share |", "|---|---|"]
        lines += [f"| `{k}` | {v:.1f}% |" for k, v in profile["top_other"].items()]
    return lines


def profile_diff_tables(diff):
    lines = ["", "## What `me` costs beyond the ceiling (perf, µs of CPU per request)", "",
             f"Both at 32 connections: the ceiling at {diff['ceiling_rps']:.0f} req/s "
             f"({diff['machine_us']:.1f} µs of the {diff['cores']} cores per request), "
             f"`me` at {diff['me_rps']:.0f} req/s ({diff['me_machine_us']:.1f} µs).", ""]
    for title, key in (("By process", "processes"), ("Inside Gatehouse", "gatehouse"),
                       ("By symbol, the largest excesses", "symbols")):
        lines += [f"{title}:", "", "| what | ceiling µs | me µs | me − ceiling |", "|---|---|---|---|"]
        for name, c, m, d in diff[key]:
            name = f"`{name}`" if key == "symbols" else name
            lines.append(f"| {name} | {c:.2f} | {m:.2f} | {d:+.2f} |")
        lines.append("")
    return lines


def met(value, bound, unit):
    if unit == "ms<":
        return value < bound
    if unit in ("ms≤", "MiB≤", "×≤"):
        return value <= bound
    return value >= bound


def markdown(report, svg_name):
    m, s = report["machine"], report["settings"]
    lines = [f"# Benchmark, {report['started']} ({report['database']})", "",
             f"![throughput and p99]({svg_name})", "",
             f"- Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}; {m['wrk']}; Node {m['node']}.",
             f"- Command: `bench/run.sh` (each cell is the median of {s['repeats']} runs of {s['duration']}; server and load generator share the machine).",
             (f"- argon2id limit (`cargo bench --bench argon2_limit`, all cores): **{report['argon2']['per_second']:.1f} verifications/s**."
              if report.get("argon2") else "- argon2id limit: not measured in this run."),
             "", "## Targets", "", "| target | measured | met |", "|---|---|---|"]
    for name, value, bound, unit in targets(report):
        shown = f"{value:.2f} {unit.rstrip('<≤')}" if unit != "×" else f"{value:.2f}×"
        lines.append(f"| {name} | {shown} | {'yes' if met(value, bound, unit) else '**no**'} |")
    lines += ["", "## Every run (medians)", "",
              "| operation | connections | req/s (2xx) | p50 ms | p99 ms | non-2xx |", "|---|---|---|---|---|---|"]
    for label, results in rows(report):
        for conn in sorted(int(c) for c in results):
            r = by_conn(results, conn)
            lines.append(f"| {label} | {conn} | {r['rps']:.1f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['non2xx']} |")
    g = report["gatehouse"]
    if "profile" in g:
        lines += profile_tables(g["profile"])
    if "profile_diff" in g:
        lines += profile_diff_tables(g["profile_diff"])
    if "flood" not in g:
        return "\n".join(lines) + "\n"
    flood, under = g["flood"], by_conn(g["me_under_flood"], 32)
    lines += ["", "## During a 256-connection login flood", "",
              f"- `me` at 32 connections: {under['rps']:.1f} req/s, p50 {under['p50_ms']:.2f} ms, p99 {under['p99_ms']:.2f} ms.",
              f"- Logins sent {flood['login_requests']}, refused with 503 at once (queue full) {flood['login_refused_503']}.",
              f"- Peak server memory (VmHWM): {flood['peak_rss_mib']:.1f} MiB.", "",
              "## me against the size of `sessions`", "", "| rows | req/s | p50 ms | p99 ms |", "|---|---|---|---|"]
    for n, r in sorted(((int(k), v) for k, v in g["scaling"].items())):
        lines.append(f"| {n:,} | {r['rps']:.1f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} |")
    return "\n".join(lines) + "\n"


def svg(report):
    data = rows(report)
    conns = [1, 32, 256]
    width, panel_h, left, top = 980, 260, 210, 40
    bar_h, gap = 8, 10
    group_h = bar_h * len(conns) + gap
    height = top + len(data) * group_h + 60
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="20" font-size="14" font-weight="bold">Throughput, req/s (log scale)</text>',
           f'<text x="{left + 400}" y="20" font-size="14" font-weight="bold">p99 latency, ms (log scale)</text>']
    max_rps = max(by_conn(r, c)["rps"] for _, r in data for c in conns if by_conn(r, c))
    max_p99 = max(by_conn(r, c)["p99_ms"] for _, r in data for c in conns if by_conn(r, c))

    def scale(value, maximum, span):
        value = max(value, 1)
        return span * math.log10(value) / math.log10(max(maximum, 10))

    for i, (label, results) in enumerate(data):
        y0 = top + i * group_h
        out.append(f'<text x="{left - 8}" y="{y0 + bar_h * 2}" text-anchor="end">{label}</text>')
        for j, c in enumerate(conns):
            r = by_conn(results, c)
            if not r:
                continue
            y = y0 + j * bar_h
            w = scale(r["rps"], max_rps, 330)
            out.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h - 1}" fill="{COLOURS[c]}"/>')
            out.append(f'<text x="{left + w + 4:.1f}" y="{y + bar_h - 1}" font-size="8">{r["rps"]:.0f}</text>')
            w = scale(r["p99_ms"] * 10, max_p99 * 10, 300)
            out.append(f'<rect x="{left + 400}" y="{y}" width="{w:.1f}" height="{bar_h - 1}" fill="{COLOURS[c]}"/>')
            out.append(f'<text x="{left + 404 + w:.1f}" y="{y + bar_h - 1}" font-size="8">{r["p99_ms"]:.1f}</text>')
    y = height - 25
    for k, c in enumerate(conns):
        out.append(f'<rect x="{left + k * 140}" y="{y}" width="12" height="12" fill="{COLOURS[c]}"/>')
        out.append(f'<text x="{left + k * 140 + 18}" y="{y + 10}">{c} connection{"s" if c > 1 else ""}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    path = Path(sys.argv[1])
    report = json.loads(path.read_text())
    svg_path = path.with_suffix(".svg")
    svg_path.write_text(svg(report))
    path.with_suffix(".md").write_text(markdown(report, svg_path.name))
    print(f"wrote {path.with_suffix('.md')} and {svg_path}")


if __name__ == "__main__":
    main()
