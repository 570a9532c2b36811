// Opens N sessionStatus subscriptions against a fresh gatehouse and reports
// the server's memory per subscription and its CPU while they sit idle.
//
//   node subscriptions.mjs [N=10000] [path/to/gatehouse]
//
// The server runs on a fresh SQLite file; each subscription is one
// WebSocket, one session (signed up over HTTP first), one timer.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import WebSocket from "ws";

const N = Number(process.argv[2] ?? 10_000);
const BIN = process.argv[3] ?? resolve(import.meta.dirname, "../../target/release/gatehouse");
const SESSIONS = 100; // N connections spread over this many sessions
const IDLE_SECONDS = 20;

const dir = mkdtempSync(join(tmpdir(), "gatehouse-live-"));
const server = spawn(BIN, ["serve"], {
  env: {
    ...process.env,
    GATEHOUSE_LISTEN: "127.0.0.1:0",
    GATEHOUSE_DATABASE_URL: `sqlite://${join(dir, "g.db")}?mode=rwc`,
    GATEHOUSE_REGISTER_MAX_PER_IP: "1000000",
    GATEHOUSE_ARGON2_MEMORY_KIB: "8192",
    GATEHOUSE_ARGON2_ITERATIONS: "1",
    GATEHOUSE_MAX_LIVE_CONNECTIONS_PER_SESSION: String(Math.ceil(N / SESSIONS) + 1),
    RUST_LOG: "warn,gatehouse=info",
  },
  stdio: ["ignore", "ignore", "pipe"],
});
const addr = await new Promise((done) =>
  createInterface({ input: server.stderr }).on("line", (line) => {
    const found = line.split("gatehouse listening addr=")[1];
    if (found) done(found.trim());
  }),
);
const url = `http://${addr}/graphql`;

const rssKiB = () =>
  Number(readFileSync(`/proc/${server.pid}/status`, "utf8").match(/VmRSS:\s+(\d+)/)[1]);
const cpuTicks = () => {
  const fields = readFileSync(`/proc/${server.pid}/stat`, "utf8").split(") ")[1].split(" ");
  return Number(fields[11]) + Number(fields[12]); // utime + stime
};

const tokens = [];
for (let i = 0; i < SESSIONS; i++) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      query: `mutation { register(input: {email: "live${i}@example.com", password: "correct horse battery"}) { token } }`,
    }),
  });
  tokens.push((await response.json()).data.register.token);
}
await new Promise((r) => setTimeout(r, 1000));
const before = rssKiB();

const open = (token) =>
  new Promise((done, fail) => {
    const ws = new WebSocket(url.replace("http", "ws"), "graphql-transport-ws");
    ws.on("open", () =>
      ws.send(JSON.stringify({ type: "connection_init", payload: { authorization: `Bearer ${token}` } })),
    );
    ws.on("message", (raw) => {
      const message = JSON.parse(raw);
      if (message.type === "connection_ack") {
        ws.send(
          JSON.stringify({
            id: "1",
            type: "subscribe",
            payload: { query: "subscription { sessionStatus { kind expiresAt } }" },
          }),
        );
      } else if (message.type === "next") {
        done(ws);
      } else if (message.type === "ping") {
        ws.send(JSON.stringify({ type: "pong" }));
      }
    });
    ws.on("error", fail);
    ws.on("close", (code) => fail(new Error(`closed ${code}`)));
  });

const sockets = [];
const started = Date.now();
for (let i = 0; i < N; i += 200) {
  const batch = [];
  for (let j = i; j < Math.min(N, i + 200); j++) batch.push(open(tokens[j % SESSIONS]));
  sockets.push(...(await Promise.all(batch)));
}
const openedIn = (Date.now() - started) / 1000;
await new Promise((r) => setTimeout(r, 2000));
const after = rssKiB();
const ticksBefore = cpuTicks();
await new Promise((r) => setTimeout(r, IDLE_SECONDS * 1000));
const idleCpu = (cpuTicks() - ticksBefore) / 100 / IDLE_SECONDS;

console.log(
  JSON.stringify(
    {
      subscriptions: sockets.length,
      opened_in_s: openedIn,
      rss_before_kib: before,
      rss_after_kib: after,
      kib_per_subscription: Number(((after - before) / sockets.length).toFixed(2)),
      idle_cpu_fraction_of_one_core: Number(idleCpu.toFixed(4)),
      idle_seconds: IDLE_SECONDS,
    },
    null,
    2,
  ),
);
for (const ws of sockets) ws.terminate();
server.kill("SIGTERM");
process.exit(0);
