// Starts the real gatehouse binary on a fresh SQLite file and a free port,
// and stops it when the test is done.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";

const root = resolve(import.meta.dirname, "../..");
export const BIN =
  process.env.GATEHOUSE_BIN ??
  join(process.env.CARGO_TARGET_DIR ?? join(root, "target"), "debug", "gatehouse");

/** A running gatehouse. `env` adds or overrides GATEHOUSE_* settings. */
export async function startGatehouse(env = {}) {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-client-"));
  const child = spawn(BIN, ["serve"], {
    env: {
      ...process.env,
      GATEHOUSE_LISTEN: "127.0.0.1:0",
      GATEHOUSE_DATABASE_URL: `sqlite://${join(dir, "gatehouse.db")}?mode=rwc`,
      GATEHOUSE_MAIL_DIR: join(dir, "mail"),
      // Cheap hashing and no sign-up limit: these tests register many users.
      GATEHOUSE_ARGON2_MEMORY_KIB: "8192",
      GATEHOUSE_ARGON2_ITERATIONS: "1",
      GATEHOUSE_REGISTER_MAX_PER_IP: "1000000",
      RUST_LOG: "info",
      ...env,
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const log = [];
  const lines = createInterface({ input: child.stderr });
  const addr = await new Promise((resolveAddr, reject) => {
    child.once("exit", (code) => reject(new Error(`gatehouse exited ${code}:\n${log.join("\n")}`)));
    lines.on("line", (line) => {
      log.push(line);
      const found = line.split("gatehouse listening addr=")[1];
      if (found) resolveAddr(found.trim());
    });
  });
  const origin = `http://${addr}`;
  return {
    origin,
    url: `${origin}/graphql`,
    // Where the e-mails it sends land, as .eml files.
    mailDir: join(dir, "mail"),
    log,
    async stop() {
      child.kill("SIGTERM");
      await new Promise((done) => (child.exitCode !== null ? done() : child.once("exit", done)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
