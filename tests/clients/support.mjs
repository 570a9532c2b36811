// What the client tests share: the example app's generated documents,
// unique e-mails, and a fetch that behaves like a browser page on another
// origin (it sends Origin and keeps cookies).
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";

export const PASSWORD = "correct horse battery staple";
export const EXAMPLE = resolve(import.meta.dirname, "../../examples/spa-client");
export const MANIFEST = resolve(EXAMPLE, "src/gql/persisted-documents.json");

/** The SPA example's typed documents, as codegen wrote them (`npm run check`). */
export const documents = await import(resolve(EXAMPLE, "dist/gql/graphql.js"));

let counter = 0;
export const email = (who) => `${who}-${process.pid}-${++counter}@example.com`;

export const sha256 = (text) => createHash("sha256").update(text).digest("hex");

export const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

/**
 * Waits for the `nth` (from 1) `.eml` file the server wrote to `to`, and
 * returns the `prefix` token (`ghr_`, `ghv_`) in its link, as a user would
 * click it.
 */
export async function tokenFromMail(mailDir, to, prefix, nth = 1) {
  const pattern = new RegExp(`${prefix}[A-Za-z0-9_-]{43}`);
  for (let waited = 0; waited < 20_000; waited += 50) {
    let files = [];
    try {
      files = readdirSync(mailDir).filter((f) => f.endsWith(".eml"));
    } catch {}
    const messages = files
      // Undo quoted-printable soft line breaks, which may split the link.
      .map((f) => readFileSync(join(mailDir, f), "utf8").replace(/=\r?\n/g, ""))
      .filter((text) => new RegExp(`^To: .*${to.replace(/[.+]/g, "\\$&")}`, "m").test(text))
      .map((text) => text.match(pattern)?.[0])
      .filter(Boolean);
    const tokens = [...new Set(messages)];
    if (tokens.length >= nth) return tokens[nth - 1];
    await sleep(50);
  }
  throw new Error(`no ${prefix} message for ${to} in ${mailDir}`);
}

/**
 * Waits for the `nth` (from 1, oldest first) sign-in code the server
 * e-mailed to `to`, and returns its 8 digits, as a user would read them.
 */
export async function codeFromMail(mailDir, to, nth = 1) {
  const addressed = new RegExp(`^To: .*${to.replace(/[.+]/g, "\\$&")}`, "m");
  for (let waited = 0; waited < 20_000; waited += 50) {
    let files = [];
    try {
      files = readdirSync(mailDir).filter((f) => f.endsWith(".eml"));
    } catch {}
    const codes = files
      .map((f) => join(mailDir, f))
      .sort((a, b) => statSync(a).mtimeMs - statSync(b).mtimeMs)
      .map((path) => readFileSync(path, "utf8").replace(/=\r?\n/g, ""))
      .filter((text) => addressed.test(text))
      .map((text) => text.match(/sign-in code is (\d{8})\./)?.[1])
      .filter(Boolean);
    if (codes.length >= nth) return codes[nth - 1];
    await sleep(50);
  }
  throw new Error(`no sign-in code for ${to} in ${mailDir}`);
}

/**
 * A fetch as a page served from `origin` makes it with
 * `credentials: "include"`: it sends `Origin` and the cookies the server
 * set, and fails as a browser would if CORS does not let the page read the
 * answer.
 */
export function browserFetch(origin) {
  const jar = new Map();
  const requests = [];
  const fetchFn = async (url, init = {}) => {
    const headers = new Headers(init.headers);
    headers.set("origin", origin);
    if (jar.size) headers.set("cookie", [...jar].map(([k, v]) => `${k}=${v}`).join("; "));
    requests.push({ method: init.method ?? "GET", url: String(url), headers });
    const response = await fetch(url, { ...init, headers });
    if (response.headers.get("access-control-allow-origin") !== origin) {
      throw new TypeError(`CORS: ${origin} may not read ${url}`);
    }
    if (response.headers.get("access-control-allow-credentials") !== "true") {
      throw new TypeError("CORS: credentials are not allowed");
    }
    for (const cookie of response.headers.getSetCookie()) {
      const [pair, ...attributes] = cookie.split(";");
      const [name, value] = pair.split("=");
      const expired = attributes.some((a) => a.trim().toLowerCase() === "max-age=0");
      if (expired) jar.delete(name.trim());
      else jar.set(name.trim(), value);
    }
    return response;
  };
  return { fetch: fetchFn, jar, requests };
}

/** A fetch that records what it sent. */
export function recordingFetch() {
  const requests = [];
  const fetchFn = (url, init = {}) => {
    requests.push({ method: init.method ?? "GET", url: String(url), body: init.body });
    return fetch(url, init);
  };
  return { fetch: fetchFn, requests };
}
