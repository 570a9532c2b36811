// Opens N sessionStatus subscriptions against a fresh gatehouse, with every
// setting at its default, and reports the server's memory per subscription
// and its CPU while they sit idle.
//
//   node subscriptions.mjs [N=10000] [path/to/gatehouse]
//
// The server runs on a fresh SQLite file; each subscription is one
// WebSocket and one timer. No limit is raised: the clients come from as
// many loopback addresses (127.0.0.2 and up; Linux answers all of 127/8) as
// the per-address limits need, and each account holds two sessions of 16
// subscriptions, as the per-session (16) and per-account (32) limits allow.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import http from "node:http";
import { createInterface } from "node:readline";
import WebSocket from "ws";

const N = Number(process.argv[2] ?? 10_000);
const BIN = process.argv[3] ?? resolve(import.meta.dirname, "../../target/release/gatehouse");
const PER_SESSION = 16; // GATEHOUSE_MAX_LIVE_CONNECTIONS_PER_SESSION
const PER_ACCOUNT = 2; // sessions: 32 connections, GATEHOUSE_MAX_LIVE_CONNECTIONS_PER_ACCOUNT
const PER_ADDRESS = 200; // under GATEHOUSE_MAX_LIVE_CONNECTIONS_PER_ADDRESS (256)
const SIGN_UPS_PER_ADDRESS = 10; // GATEHOUSE_REGISTER_MAX_PER_IP
const SESSIONS = Math.ceil(N / PER_SESSION);
const ADDRESSES = Math.ceil(N / PER_ADDRESS);
const IDLE_SECONDS = 20;
const address = (i) => `127.0.${2 + Math.floor(i / 250)}.${2 + (i % 250)}`;

const dir = mkdtempSync(join(tmpdir(), "gatehouse-live-"));
const server = spawn(BIN, ["serve"], {
  env: {
    ...process.env,
    GATEHOUSE_LISTEN: "127.0.0.1:0",
    GATEHOUSE_DATABASE_URL: `sqlite://${join(dir, "g.db")}?mode=rwc`,
    GATEHOUSE_MAIL_DIR: join(dir, "mail"),
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

/** POSTs a GraphQL operation from a given local address. */
const post = (query, from) =>
  new Promise((done, fail) => {
    const body = JSON.stringify({ query });
    const request = http.request(
      url,
      { method: "POST", localAddress: from, headers: { "content-type": "application/json" } },
      (response) => {
        let text = "";
        response.on("data", (chunk) => (text += chunk));
        response.on("end", () => done(JSON.parse(text)));
      },
    );
    request.on("error", fail);
    request.end(body);
  });

// Accounts signed up from as many addresses as the sign-up limit needs;
// each signs in once more for its second session.
const tokens = [];
const accounts = Math.ceil(SESSIONS / PER_ACCOUNT);
for (let a = 0; a < accounts; a += 8) {
  const batch = [];
  for (let i = a; i < Math.min(accounts, a + 8); i++) {
    const from = address(Math.floor(i / SIGN_UPS_PER_ADDRESS));
    const credentials = `email: "live${i}@example.com", password: "correct horse battery"`;
    batch.push(
      (async () => {
        const signedUp = await post(`mutation { register(input: {${credentials}}) { token } }`, from);
        const signedIn = await post(`mutation { login(input: {${credentials}}) { token } }`, from);
        if (!signedUp.data || !signedIn.data) throw new Error(JSON.stringify([signedUp, signedIn]));
        return [signedUp.data.register.token, signedIn.data.login.token];
      })(),
    );
  }
  for (const pair of await Promise.all(batch)) tokens.push(...pair);
}
await new Promise((r) => setTimeout(r, 1000));
const before = rssKiB();

const open = (token, from) =>
  new Promise((done, fail) => {
    const ws = new WebSocket(url.replace("http", "ws"), "graphql-transport-ws", { localAddress: from });
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
  for (let j = i; j < Math.min(N, i + 200); j++) {
    // Round the addresses, so that a batch keeps under the 16 handshakes
    // one address may have waiting.
    batch.push(open(tokens[Math.floor(j / PER_SESSION)], address(j % ADDRESSES)));
  }
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
      sessions: SESSIONS,
      accounts,
      client_addresses: ADDRESSES,
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
