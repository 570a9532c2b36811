#!/usr/bin/env python3
"""The container image as a user runs it, with podman and real HTTP.

    tests/container/run.py IMAGE

IMAGE is built by container/build.sh. The checks, each of which fails
without the part of the image it names:

- the image: under 40 MB, OCI labels, a HEALTHCHECK, /data a volume, and
  nothing in it but the binary and its /etc files;
- on a named volume: it serves on 0.0.0.0:8080 (reached through a published
  port), not as root, and is healthy; register, login and `me` over HTTP;
  `podman exec` runs the admin CLI; the SQLite file and the .eml files
  land in the volume, owned by the process's uid; `podman stop` (SIGTERM
  to PID 1) exits 0 at once;
- restarted on the same volume, read-only, with no capabilities: the
  session from before still works;
- on the host's PostgreSQL (GATEHOUSE_TEST_DATABASE_URL, as for
  `cargo test`), by a host name from --add-host (/etc/hosts) and by one
  only DNS knows, over TLS.

It removes every container, volume and database it made, whatever happens.
Only the standard library: no venv needed.
"""

import json
import os
import shlex
import socket
import struct
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAX_IMAGE_BYTES = 40 * 1000 * 1000
UID = 10001
PASSWORD = "correct horse battery"
# 32 bytes, base64: a sealing key of the shape GATEHOUSE_SECRET_KEY takes.
SECRET_KEY = "ci:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
# A stop that took the engine's 10 s kill would be a SIGKILL, not a shutdown.
STOP_BUDGET = 5.0
LABELS = ["title", "description", "version", "revision", "created", "licenses"]


class CheckFailed(Exception):
    pass


def say(message):
    print(message, flush=True)


passed = 0


def check(condition, what, detail=""):
    global passed
    if not condition:
        raise CheckFailed(f"{what}{': ' + str(detail) if detail != '' else ''}")
    passed += 1
    say(f"  ok: {what}")


def run(*args, check_rc=True):
    """Runs a command, printing it; CheckFailed with its stderr if it fails."""
    say("$ " + shlex.join(args))
    done = subprocess.run(args, capture_output=True, text=True)
    if check_rc and done.returncode != 0:
        raise CheckFailed(f"{args[0]} exited {done.returncode}: {done.stderr.strip()}")
    return done


def podman(*args, check_rc=True):
    return run("podman", *args, check_rc=check_rc)


def inspect(kind, name, template):
    return podman(kind, "inspect", "--format", template, name).stdout.strip()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gatehouse:
    """A client of one container's HTTP API."""

    def __init__(self, base):
        self.base = base

    def get(self, path):
        try:
            with urllib.request.urlopen(self.base + path, timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as err:
            return err.code

    def graphql(self, query, variables=None, token=None):
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(self.base + "/graphql", data=body, method="POST")
        request.add_header("Content-Type", "application/json")
        request.add_header("Accept", "application/graphql-response+json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as err:
            return err.code, json.load(err)

    def sign_in(self, field, email):
        status, body = self.graphql(
            f"mutation($input: {field.capitalize()}Input!) "
            f"{{ {field}(input: $input) {{ token user {{ email }} }} }}",
            {"input": {"email": email, "password": PASSWORD}},
        )
        check(
            status == 200 and body.get("data", {}).get(field, {}).get("token", "").startswith("gth_"),
            f"{field} {email} over HTTP",
            (status, body),
        )
        return body["data"][field]["token"]

    def me(self, token):
        return self.graphql("{ me { user { email } } }", token=token)

    def check_me(self, token, email, what):
        status, body = self.me(token)
        check(
            status == 200 and body["data"]["me"]["user"]["email"] == email,
            what,
            (status, body),
        )


class Containers:
    """The containers, volumes and databases this run made, to remove."""

    def __init__(self, image, run_id):
        self.image = image
        self.run_id = run_id
        self.containers = []
        self.volumes = []
        self.cleanups = []

    def volume(self):
        name = f"gatehouse-ci-{self.run_id}"
        podman("volume", "create", name)
        self.volumes.append(name)
        return name

    def start(self, label, *args):
        name = f"gatehouse-ci-{self.run_id}-{label}"
        self.containers.append(name)
        podman("run", "--detach", "--name", name, *args, self.image)
        return name

    def wait_ready(self, name, client, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if client.get("/readyz") == 200:
                    say(f"  ok: {name} answers GET /readyz with 200 at {client.base}")
                    return
            except (OSError, urllib.error.URLError):
                pass
            if inspect("container", name, "{{.State.Running}}") != "true":
                break
            time.sleep(0.25)
        raise CheckFailed(f"{name} never became ready:\n{self.logs(name)}")

    def logs(self, name):
        done = podman("logs", name, check_rc=False)
        return done.stdout + done.stderr

    def stop(self, name):
        """`podman stop`: SIGTERM to PID 1, SIGKILL after 10 s."""
        started = time.monotonic()
        podman("stop", "--time", "10", name)
        took = time.monotonic() - started
        code = inspect("container", name, "{{.State.ExitCode}}")
        check(code == "0", f"{name} exits 0 on SIGTERM", f"exit {code}\n{self.logs(name)}")
        check(took < STOP_BUDGET, f"{name} stopped in {took:.1f}s, not at the 10s kill", took)
        check("shutting down" in self.logs(name), f"{name} logged its shutdown")

    def remove_all(self):
        for cleanup in reversed(self.cleanups):
            try:
                cleanup()
            except Exception as err:  # keep cleaning
                say(f"cleanup failed: {err}")
        for name in self.containers:
            podman("rm", "--force", "--volumes", name, check_rc=False)
        for name in self.volumes:
            podman("volume", "rm", "--force", name, check_rc=False)


def check_image(image):
    say(f"\n--- the image {image}")
    details = json.loads(podman("image", "inspect", image).stdout)[0]
    size = details["Size"]
    check(size < MAX_IMAGE_BYTES, f"it is {size / 1e6:.1f} MB, under 40 MB", size)
    config = details["Config"]
    labels = config.get("Labels") or {}
    for label in LABELS:
        value = labels.get(f"org.opencontainers.image.{label}", "")
        check(value not in ("", "unknown"), f"label org.opencontainers.image.{label}={value}")
    healthcheck = details.get("Healthcheck") or {}
    check(
        healthcheck.get("Test") == ["CMD", "/usr/local/bin/gatehouse", "healthcheck"],
        "its HEALTHCHECK runs `gatehouse healthcheck` (kept by --format docker)",
        healthcheck,
    )
    check("/data" in (config.get("Volumes") or {}), "/data is a volume", config.get("Volumes"))
    check(config.get("User") == f"{UID}:{UID}", f"it runs as {UID}:{UID}", config.get("User"))

    # What is in it: export a created (never started) container's files.
    name = f"gatehouse-ci-export-{uuid.uuid4().hex[:8]}"
    podman("create", "--name", name, image)
    try:
        with tempfile.TemporaryFile() as tar:
            say(f"$ podman export {name}")
            if subprocess.run(["podman", "export", name], stdout=tar).returncode != 0:
                raise CheckFailed(f"podman export {name} failed")
            tar.seek(0)
            files = {m.name.lstrip("./").rstrip("/"): m for m in tarfile.open(fileobj=tar)}
    finally:
        podman("rm", "--force", "--volumes", name, check_rc=False)
    regular = sorted(path for path, m in files.items() if m.isfile() and m.size > 0)
    check(
        regular == ["etc/group", "etc/passwd", "usr/local/bin/gatehouse"],
        "it holds the binary and its /etc files, no shell or libraries",
        regular,
    )
    tmp, data = files.get("tmp"), files.get("data")
    check(tmp is not None and tmp.mode & 0o7777 == 0o1777, "/tmp is there, mode 1777")
    check(
        data is not None and data.uid == UID and data.mode & 0o7777 == 0o700,
        f"/data is {UID}'s, mode 700",
    )


def check_process_is_not_root(name):
    pid = inspect("container", name, "{{.State.Pid}}")
    with open(f"/proc/{pid}/status") as status:
        ids = {
            line.split(":")[0]: line.split()[1:]
            for line in status
            if line.startswith(("Uid:", "Gid:", "Groups:"))
        }
    say(f"  /proc/{pid}/status: {ids}")
    check(
        ids["Uid"] == [str(UID)] * 4 and ids["Gid"] == [str(UID)] * 4,
        f"{name}'s PID 1 (host pid {pid}) runs as {UID}:{UID}, real, effective, saved and fs",
    )
    check("0" not in ids["Groups"], "and in no root group", ids["Groups"])


def check_healthy(name):
    podman("healthcheck", "run", name)
    status = inspect("container", name, "{{.State.Health.Status}}")
    check(status == "healthy", f"{name} is healthy by its HEALTHCHECK", status)


def check_files_in_volume(volume):
    mountpoint = inspect("volume", volume, "{{.Mountpoint}}")
    database = os.path.join(mountpoint, "gatehouse.db")
    check(os.path.isfile(database), f"the SQLite file is in the volume ({database})")
    check(os.stat(database).st_uid == UID, f"and owned by {UID}", os.stat(database).st_uid)
    mail = os.path.join(mountpoint, "mail")
    deadline = time.monotonic() + 15
    while not (os.path.isdir(mail) and any(f.endswith(".eml") for f in os.listdir(mail))):
        if time.monotonic() > deadline:
            raise CheckFailed(f"no .eml file in {mail} (the verification mail of register)")
        time.sleep(0.25)
    eml = next(f for f in os.listdir(mail) if f.endswith(".eml"))
    owner = os.stat(os.path.join(mail, eml)).st_uid
    check(owner == UID, f"the verification mail is in the volume (mail/{eml}), owned by {UID}", owner)


def sqlite_on_a_volume(pods):
    say("\n--- SQLite on a named volume")
    volume = pods.volume()
    port = free_port()
    client = Gatehouse(f"http://127.0.0.1:{port}")
    email = f"container-{pods.run_id}@example.com"
    # Published to loopback on the host: reached only if it listens on
    # 0.0.0.0 inside.
    first = pods.start("sqlite", "--volume", f"{volume}:/data", "--publish", f"127.0.0.1:{port}:8080")
    pods.wait_ready(first, client)
    check_process_is_not_root(first)
    check_healthy(first)
    client.sign_in("register", email)
    token = client.sign_in("login", email)
    client.check_me(token, email, "`me` answers with the session from login")
    listed = podman("exec", first, "gatehouse", "user", "list", "--json").stdout
    check(email in listed, "`podman exec` runs the admin CLI (no shell needed) on the same data", listed)
    check_files_in_volume(volume)
    pods.stop(first)

    say("\n--- the same volume, restarted read-only with no capabilities")
    second = pods.start(
        "restarted",
        "--volume", f"{volume}:/data",
        "--publish", f"127.0.0.1:{port}:8080",
        "--read-only", "--cap-drop", "all", "--security-opt", "no-new-privileges",
    )
    pods.wait_ready(second, client)
    client.check_me(token, email, "the session from before the restart still works")
    status, body = client.me("gth_" + "A" * 43)
    check(status == 401, "and a made-up token does not", (status, body))
    pods.stop(second)


class DnsStub(threading.Thread):
    """A DNS server for one name: A records answer `ip`, other types
    nothing, other names NXDOMAIN. It counts the questions it answers."""

    def __init__(self, listen, name, ip):
        super().__init__(daemon=True)
        self.name, self.ip = name, ip
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((listen, 53))
        self.sock.settimeout(0.2)
        self.questions = []
        self.stopping = False

    def run(self):
        while not self.stopping:
            try:
                query, peer = self.sock.recvfrom(512)
                self.sock.sendto(self.answer(query), peer)
            except socket.timeout:
                continue
            except (OSError, IndexError, struct.error):
                continue

    def answer(self, query):
        end, labels = 12, []
        while query[end]:
            length = query[end]
            labels.append(query[end + 1 : end + 1 + length].decode().lower())
            end += 1 + length
        qtype = struct.unpack(">H", query[end + 1 : end + 3])[0]
        question = query[12 : end + 5]
        name = ".".join(labels)
        self.questions.append((name, qtype))
        records, rcode = b"", 3
        if name == self.name:
            rcode = 0
            if qtype == 1:
                records = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 5, 4) + socket.inet_aton(self.ip)
        flags = bytes([0x84 | (query[2] & 0x01), 0x80 | rcode])
        header = query[:2] + flags + struct.pack(">HHHH", 1, 1 if records else 0, 0, 0)
        return header + question + records

    def stop(self):
        self.stopping = True
        self.join()
        self.sock.close()


def postgresql_by_host_name(pods, admin_url):
    say("\n--- PostgreSQL on the host, by host name")
    admin = urllib.parse.urlsplit(admin_url)
    database = f"gatehouse_container_{pods.run_id}"
    run("psql", "--no-psqlrc", "--quiet", "--command", f'CREATE DATABASE "{database}"', admin_url)
    pods.cleanups.append(
        lambda: run("psql", "--no-psqlrc", "--quiet", "--command",
                    f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)', admin_url, check_rc=False)
    )

    def url_at(host):
        netloc = f"{admin.username}:{admin.password}@{host}:{admin.port or 5432}"
        return urllib.parse.urlunsplit((admin.scheme, netloc, f"/{database}", "sslmode=require", ""))

    def start(label, host, *args):
        port = free_port()
        # PostgreSQL listens on the host's loopback only: the container
        # shares the host's network, and so listens on a free port of it.
        name = pods.start(
            label, "--network", "host", *args,
            "--env", f"GATEHOUSE_LISTEN=127.0.0.1:{port}",
            "--env", f"GATEHOUSE_DATABASE_URL={url_at(host)}",
            # PostgreSQL nodes share the key that seals TOTP secrets.
            "--env", f"GATEHOUSE_SECRET_KEY={SECRET_KEY}",
        )
        client = Gatehouse(f"http://127.0.0.1:{port}")
        pods.wait_ready(name, client)
        return name, client

    # /etc/hosts, as --add-host (and compose's extra_hosts) write it.
    name, client = start("pg-hosts", "pgbox", "--add-host", "pgbox:127.0.0.1")
    check_process_is_not_root(name)
    check_healthy(name)
    email = f"container-pg-{pods.run_id}@example.com"
    client.sign_in("register", email)
    token = client.sign_in("login", email)
    client.check_me(token, email, "`me` answers with the session from login")
    ssl = run(
        "psql", "--no-psqlrc", "--tuples-only", "--no-align", "--command",
        "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_ssl s "
        f"JOIN pg_stat_activity a USING (pid) WHERE a.datname = '{database}'",
        admin_url,
    ).stdout.strip()
    encrypted, connections = (int(n) for n in ssl.split("|"))
    check(connections > 0 and encrypted == connections,
          f"all {connections} of its connections use TLS (sslmode=require)", ssl)
    pods.stop(name)

    # A name only a DNS server knows, as in compose or Kubernetes.
    dns = DnsStub("127.0.0.153", "db.gatehouse.test", "127.0.0.1")
    dns.start()
    pods.cleanups.append(dns.stop)
    name, client = start("pg-dns", "db.gatehouse.test", "--dns", "127.0.0.153")
    check(("db.gatehouse.test", 1) in dns.questions, "it asked DNS for db.gatehouse.test", dns.questions)
    client.check_me(token, email, "the session is found through PostgreSQL named by DNS")
    pods.stop(name)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    image = sys.argv[1]
    os.environ.setdefault("CONTAINERS_CONF", os.path.join(REPO, ".ci", "containers.conf"))
    say(f"CONTAINERS_CONF={os.environ['CONTAINERS_CONF']}")
    admin_url = os.environ.get("GATEHOUSE_TEST_DATABASE_URL")
    pods = Containers(image, uuid.uuid4().hex[:8])
    try:
        check_image(image)
        sqlite_on_a_volume(pods)
        if admin_url:
            postgresql_by_host_name(pods, admin_url)
        elif os.environ.get("CI"):
            raise CheckFailed("GATEHOUSE_TEST_DATABASE_URL is not set, and CI must run the PostgreSQL part")
        else:
            say("\n*** PostgreSQL part SKIPPED: set GATEHOUSE_TEST_DATABASE_URL ***")
    except CheckFailed as err:
        say(f"\nFAILED: {err}")
        for name in pods.containers:
            say(f"\n--- podman logs {name}\n{pods.logs(name)}")
        failed = 1
    else:
        failed = 0
    finally:
        say("\n--- cleaning up")
        pods.remove_all()
    say(f"\ncontainer: {passed} passed, {failed} failed")
    return failed


if __name__ == "__main__":
    sys.exit(main())
