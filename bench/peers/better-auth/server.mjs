// Better Auth set up as close to Gatehouse as it allows, for bench/run.sh:
// e-mail and password, bearer tokens, a 30-minute sliding session whose
// expiry is rewritten at most every 5 s, SQLite in WAL mode, no rate limit.
// Better Auth has no absolute cap; it hashes passwords with scrypt.
import { createServer } from "node:http";
import Database from "better-sqlite3";
import { betterAuth } from "better-auth";
import { getMigrations } from "better-auth/db/migration";
import { toNodeHandler } from "better-auth/node";
import { bearer } from "better-auth/plugins";

const port = Number(process.env.PORT ?? 3000);
const db = new Database(process.env.DB ?? "peer.db");
db.pragma("journal_mode = WAL");
db.pragma("synchronous = NORMAL");

const auth = betterAuth({
  database: db,
  secret: "bench-only-secret-with-at-least-32-characters",
  baseURL: `http://127.0.0.1:${port}`,
  emailAndPassword: { enabled: true },
  session: { expiresIn: 30 * 60, updateAge: 5 },
  rateLimit: { enabled: false },
  plugins: [bearer()],
});

const { runMigrations } = await getMigrations(auth.options);
await runMigrations();
createServer(toNodeHandler(auth)).listen(port, "127.0.0.1", () => {
  console.log(`better-auth listening on ${port}`);
});
