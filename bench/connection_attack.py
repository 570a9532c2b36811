#!/usr/bin/env python3
"""One client against a node's connections and memory (issue 22, section 2).

Opens, from 127.0.0.2, idle, half-sent, trickling (a byte every 5 s) and
idle keep-alive connections plus some 400 KB header lines; measures the
server's RSS and the latency of /healthz from 127.0.0.1 under the attack,
then how many attacking connections the server still holds after HOLD
seconds. Loopback only.

    python3 bench/connection_attack.py 127.0.0.1:8080 PID [EACH] [HUGE] [HOLD]
"""
import resource, select, socket, sys, time

addr, pid = sys.argv[1], int(sys.argv[2])
each = int(sys.argv[3]) if len(sys.argv) > 3 else 500
huge = int(sys.argv[4]) if len(sys.argv) > 4 else 200
hold = float(sys.argv[5]) if len(sys.argv) > 5 else 75
host, port = addr.rsplit(":", 1)
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

def rss_mib():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

def connect(source="127.0.0.2"):
    s = socket.socket()
    s.bind((source, 0))
    s.connect((host, int(port)))
    return s

def healthz_ms():
    start = time.monotonic()
    try:
        s = connect("127.0.0.1")
        s.settimeout(5)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        ok = s.recv(100).startswith(b"HTTP/1.1 200")
        s.close()
    except OSError:  # a timeout: not answered within 5 s
        ok = False
    return (time.monotonic() - start) * 1000 if ok else float("inf")

def closed(s):
    """Whether the server has closed `s`: past any answer (a 431), EOF or RST."""
    s.setblocking(False)
    try:
        while True:
            if s.recv(65536) == b"":
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True

base = rss_mib()
conns, trickle = [], []
for kind in ("silent", "half", "trickle", "keepalive"):
    for _ in range(each):
        try:
            s = connect()
        except OSError:
            continue
        try:
            if kind == "half":
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            elif kind == "keepalive":
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                s.settimeout(2)  # a node out of files never answers
                s.recv(1000)
            elif kind == "trickle":
                trickle.append(s)
        except OSError:
            pass
        s.settimeout(None)
        conns.append(s)
line = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (400 * 1024)
for _ in range(huge):
    try:
        s = connect()
        s.sendall(line)
        conns.append(s)
    except OSError:
        pass
time.sleep(1)
print(f"attacking connections opened: {len(conns)}")
print(f"RSS: {base:.0f} MiB before, {rss_mib():.0f} MiB under attack")
lat = [healthz_ms() for _ in range(10)]
print(f"/healthz from 127.0.0.1 under attack: max {max(lat):.1f} ms, median {sorted(lat)[5]:.1f} ms (inf: no answer within 5 s)")
start = time.monotonic()
while time.monotonic() - start < hold:
    time.sleep(5)
    for s in trickle:
        try:
            s.send(b"a")
        except OSError:
            pass
still = sum(1 for s in conns if not closed(s))
print(f"still open after {hold:.0f} s: {still} of {len(conns)}")
