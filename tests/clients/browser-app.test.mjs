// The SPA example's browser app (examples/spa-client/app), bundled as it
// ships, served from its own origin and driven in headless Chromium over
// W3C WebDriver against the real binary: sign-up, sessions and events,
// the "confirm it's you" step, passkeys on WebDriver's virtual
// authenticator (autofill, the button, the second factor, sign-up),
// TOTP, the live expiry warning, another provider (tests/oidc/provider.mjs,
// a certified OpenID provider, through its own login page: sign-up,
// LINK_REQUIRED, linking in a pop-up, unlinking) and codes by e-mail.
// A screenshot of each page goes to GATEHOUSE_SCREENSHOTS (default
// target/screenshots/).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { extname, join, resolve } from "node:path";
import * as OTPAuth from "otpauth";
import { startGatehouse } from "./gatehouse.mjs";
import { EXAMPLE, PASSWORD, codeFromMail, email, sleep } from "./support.mjs";

const CHROMEDRIVER = process.env.CHROMEDRIVER ?? "/usr/bin/chromedriver";
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const APP = resolve(EXAMPLE, "dist/app");
const root = resolve(import.meta.dirname, "../..");
const SCREENSHOTS =
  process.env.GATEHOUSE_SCREENSHOTS ??
  join(process.env.CARGO_TARGET_DIR ?? join(root, "target"), "screenshots");

const OIDC = resolve(root, "tests/oidc");
const missing = !existsSync(CHROMEDRIVER) || !existsSync(CHROMIUM);
if (missing) {
  assert.ok(!process.env.CI, `CI must install chromium and chromium-driver (${CHROMEDRIVER})`);
  console.error("*** SKIPPED the browser app test: apt-get install chromium chromium-driver ***");
}

/** Serves dist/app; WebAuthn needs a secure context, so the app is on http://localhost. */
async function serveApp() {
  const types = { ".html": "text/html", ".js": "text/javascript", ".map": "application/json" };
  const server = createServer((request, response) => {
    const path = new URL(request.url, "http://localhost").pathname;
    const file = join(APP, path === "/" ? "index.html" : path.replace(/^\/+/, ""));
    if (!file.startsWith(APP) || !existsSync(file)) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream" });
    response.end(readFileSync(file));
  });
  await new Promise((done) => server.listen(0, "127.0.0.1", done));
  return { origin: `http://localhost:${server.address().port}`, close: () => server.close() };
}

/**
 * The test OpenID provider (tests/oidc/provider.mjs, panva's certified
 * oidc-provider), sending browsers back to `redirectUri` only.
 */
async function startProvider(redirectUri) {
  assert.ok(existsSync(join(OIDC, "node_modules")), "the provider needs its packages: cd tests/oidc && npm ci");
  const child = spawn(process.execPath, ["provider.mjs"], {
    cwd: OIDC,
    env: { ...process.env, REDIRECT_URIS: redirectUri },
    // It exits when its stdin closes, should this process die first.
    stdio: ["pipe", "pipe", "pipe"],
  });
  const log = [];
  child.stderr.on("data", (chunk) => log.push(String(chunk)));
  const line = await new Promise((found, reject) => {
    let out = "";
    child.stdout.on("data", (chunk) => {
      out += chunk;
      if (out.includes("\n")) found(out.split("\n")[0]);
    });
    child.once("exit", (code) => reject(new Error(`provider.mjs exited ${code}: ${log.join("")}`)));
  });
  const { issuer } = JSON.parse(line);
  return {
    issuer,
    /** Creates or changes an account there, signed in to by its `sub`. */
    async account(sub, address, verified) {
      const response = await fetch(`${issuer}/__test/accounts/${sub}`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ email: address, email_verified: verified, name: sub }),
      });
      assert.equal(response.status, 204);
    },
    async stop() {
      const exited = new Promise((done) => (child.exitCode !== null ? done() : child.once("exit", done)));
      child.stdin.end();
      await exited;
    },
  };
}

const ELEMENT = "element-6066-11e4-a52e-4f735466cecf";

/** Just enough W3C WebDriver, over fetch. */
class Browser {
  static async start() {
    const port = await freePort();
    const driver = spawn(CHROMEDRIVER, [`--port=${port}`], { stdio: "ignore" });
    const base = `http://127.0.0.1:${port}`;
    for (let i = 0; i < 100; i++) {
      if (await fetch(`${base}/status`).then((r) => r.ok, () => false)) break;
      await sleep(100);
    }
    const profile = mkdtempSync(join(tmpdir(), "gatehouse-chromium-"));
    const browser = new Browser(base, driver, profile);
    const session = browser.call("POST", "/session", {
      capabilities: {
        alwaysMatch: {
          "webauthn:virtualAuthenticators": true,
          "goog:chromeOptions": {
            binary: CHROMIUM,
            args: [
              "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run",
              "--window-size=1280,1400", `--user-data-dir=${profile}`,
              // Nothing leaves this machine: all but loopback goes to a dead proxy.
              "--proxy-server=http://127.0.0.1:9",
            ],
          },
        },
      },
    });
    const { sessionId } = await session.catch(async (error) => {
      await browser.quit();
      throw error;
    });
    browser.session = `/session/${sessionId}`;
    return browser;
  }

  constructor(base, driver, profile) {
    Object.assign(this, { base, driver, profile, session: null, shots: 0 });
  }

  async call(method, path, body) {
    const response = await fetch(`${this.base}${path}`, {
      method,
      headers: body ? { "content-type": "application/json" } : {},
      body: body && JSON.stringify(body),
    });
    const { value } = await response.json();
    if (!response.ok) throw new Error(`${method} ${path}: ${value.error}: ${value.message}`);
    return value;
  }

  do(method, path, body) {
    return this.call(method, `${this.session}${path}`, body);
  }

  goto(url) {
    return this.do("POST", "/url", { url });
  }

  run(script, ...args) {
    return this.do("POST", "/execute/sync", { script, args });
  }

  /** Waits until `check` returns something truthy, and returns it. */
  async until(what, check, ms = 10_000) {
    const end = Date.now() + ms;
    for (;;) {
      const value = await check();
      if (value) return value;
      if (Date.now() > end) {
        await this.screenshot(`timeout-${what.replace(/\W+/g, "-")}`);
        const notice = await this.run("return document.getElementById('notice')?.innerText");
        throw new Error(`waited ${ms} ms for ${what}; notice: ${notice}`);
      }
      await sleep(100);
    }
  }

  /** The element for `css` once it is shown. */
  async find(css) {
    return this.until(`${css} to show`, async () => {
      const found = await this.do("POST", "/elements", { using: "css selector", value: css });
      for (const element of found) {
        const id = element[ELEMENT];
        // The app re-renders a page when its data arrives: look again.
        const shown = await this.do("GET", `/element/${id}/displayed`).catch((error) => {
          if (/stale element/.test(error.message)) return false;
          throw error;
        });
        if (shown) return id;
      }
      return null;
    });
  }

  async click(css) {
    await this.do("POST", `/element/${await this.find(css)}/click`, {});
  }

  async type(css, text) {
    const id = await this.find(css);
    await this.do("POST", `/element/${id}/clear`, {});
    await this.do("POST", `/element/${id}/value`, { text });
  }

  async text(css) {
    return this.do("GET", `/element/${await this.find(css)}/text`);
  }

  /** The handles of the open windows, and of the current one. */
  windows() {
    return this.do("GET", "/window/handles");
  }

  window() {
    return this.do("GET", "/window");
  }

  switchTo(handle) {
    return this.do("POST", "/window", { handle });
  }

  /** Waits for the app to show a route (`account`, `sign-in`, …). */
  route(name) {
    return this.until(`the ${name} page`, () =>
      this.run("return document.body.dataset.route === arguments[0]", name),
    );
  }

  /** The id of this browser's session, as the account page lists it. */
  currentSession() {
    return this.run(
      "return document.querySelector('[data-testid=session][data-current=true]')?.dataset.sessionId ?? null",
    );
  }

  /** The `data-kind`s of the events the account page lists. */
  events() {
    return this.run(
      "return [...document.querySelectorAll('[data-testid=event]')].map(e => e.dataset.kind)",
    );
  }

  /** A platform authenticator that holds passkeys and verifies the user at once. */
  async addAuthenticator() {
    const id = await this.do("POST", "/webauthn/authenticator", {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
    });
    this.authenticator = `/webauthn/authenticator/${id}`;
  }

  passkeys() {
    return this.do("GET", `${this.authenticator}/credentials`);
  }

  /**
   * Takes the passkeys out of the authenticator, for `givePasskeys`. The
   * virtual authenticator answers autofill at once, so the sign-in page
   * would sign in with any passkey it holds.
   */
  async takePasskeys() {
    const held = await this.passkeys();
    await this.do("DELETE", `${this.authenticator}/credentials`);
    return held;
  }

  async givePasskeys(held) {
    for (const credential of held) await this.do("POST", `${this.authenticator}/credential`, credential);
  }

  async screenshot(name) {
    const png = await this.do("GET", "/screenshot");
    const file = `${String(++this.shots).padStart(2, "0")}-${name}.png`;
    writeFileSync(join(SCREENSHOTS, file), Buffer.from(png, "base64"));
  }

  async quit() {
    if (this.session) await this.do("DELETE", "").catch(() => {});
    this.driver.kill();
    rmSync(this.profile, { recursive: true, force: true });
  }
}

async function freePort() {
  const server = createServer();
  await new Promise((done) => server.listen(0, "127.0.0.1", done));
  const { port } = server.address();
  await new Promise((done) => server.close(done));
  return port;
}

/** Signs in from outside the browser, as the user's phone would. */
async function phoneSignIn(server, address) {
  const response = await fetch(server.url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "user-agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    },
    body: JSON.stringify({
      query: "mutation($input: LoginInput!) { login(input: $input) { token } }",
      variables: { input: { email: address, password: PASSWORD } },
    }),
  });
  return (await response.json()).data.login.token;
}

/** `me` with a bearer token: null with the error code once it fails. */
async function meWith(server, token) {
  const response = await fetch(server.url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ query: "{ me { user { email } } }" }),
  });
  const body = await response.json();
  return body.errors?.[0]?.extensions?.reason ?? body.data.me.user.email;
}

describe("the SPA example's browser app", { skip: missing && "no chromedriver" }, () => {
  let app, browser, server, brief, provider;
  const FRESH = 4_000;

  before(async () => {
    app = await serveApp();
    // The binary wants the RP ID whenever origins are listed.
    const env = {
      GATEHOUSE_CORS_ORIGINS: app.origin,
      GATEHOUSE_WEBAUTHN_RP_ID: "localhost",
      GATEHOUSE_WEBAUTHN_ORIGINS: app.origin,
    };
    // The provider sends the browser back to the app's own page, which
    // takes `?code=…&state=…` off the address (app/providers.ts).
    const callback = `${app.origin}/`;
    provider = await startProvider(callback);
    const providers = [{
      id: "test",
      name: "Test provider",
      issuer: provider.issuer,
      client_id: "gatehouse",
      client_secret: "gatehouse-test-secret-0123456789abcdef",
      // Its addresses never join an account by themselves: LINK_REQUIRED.
      trusted_for_linking: false,
    }];
    server = await startGatehouse({
      ...env,
      GATEHOUSE_FRESH_AGE: `${FRESH / 1000}s`,
      GATEHOUSE_OIDC_PROVIDERS: JSON.stringify(providers),
      GATEHOUSE_OIDC_REDIRECT_URIS: callback,
      GATEHOUSE_EMAIL_SIGN_IN: "on",
    });
    // Short timeouts, for the expiry warning.
    brief = await startGatehouse({
      ...env,
      GATEHOUSE_IDLE_TIMEOUT: "5s",
      GATEHOUSE_EXPIRY_WARNING: "3s",
    });
    browser = await Browser.start();
    await browser.addAuthenticator();
    // This run's screenshots only.
    mkdirSync(SCREENSHOTS, { recursive: true });
    for (const old of readdirSync(SCREENSHOTS).filter((f) => /^\d\d-[\w-]+\.png$/.test(f))) {
      rmSync(join(SCREENSHOTS, old));
    }
  });

  after(async () => {
    await browser?.quit();
    app?.close();
    await server?.stop();
    await brief?.stop();
    await provider?.stop();
  });

  /** Answers the "confirm it's you" dialog with the password, if the app asks. */
  async function confirmIfAsked(shown) {
    const which = await browser.until("the operation or the dialog", () =>
      browser.run(
        "return document.getElementById('reauth-dialog').open ? 'dialog' : document.querySelector(arguments[0])?.checkVisibility() ? 'done' : null",
        shown,
      ),
    );
    if (which === "dialog") {
      await browser.type("#reauth-password", PASSWORD);
      await browser.click("#reauth-submit");
    }
    return which === "dialog";
  }

  /** Opens the app against `gatehouse` on `route`. */
  async function open(gatehouse, route) {
    await browser.goto(`${app.origin}/?api=${encodeURIComponent(gatehouse.url)}${route}`);
  }

  async function signInWithPassword(address) {
    await browser.type("#sign-in-email", address);
    await browser.type("#sign-in-password", PASSWORD);
    await browser.click("#sign-in-submit");
  }

  async function signOut() {
    await browser.click("#sign-out");
    await browser.route("sign-in");
  }

  /** At the provider's own login page: signs in as `sub` and allows. */
  async function providerLogin(sub) {
    await browser.type("#sub", sub);
    await browser.click("#login-submit");
  }

  /** Waits for the notice to carry the error `code`. */
  function noticeCode(code) {
    return browser.until(code, () =>
      browser.run("return document.getElementById('notice').dataset.code === arguments[0]", code),
    );
  }

  /** Waits until this browser's session in the list was proven with `methods`. */
  function signedInWith(methods) {
    const pattern = new RegExp(`with ${methods.replace(/\+/g, "\\+")} from`);
    return browser.until(`a session with ${methods}`, async () => {
      const rows = await browser.run(
        "return [...document.querySelectorAll('[data-testid=session][data-current=true]')].map(e => e.innerText)",
      );
      return rows.some((text) => pattern.test(text));
    });
  }

  test("signs up with a password, adds a passkey, signs in with it every way, with TOTP, and removes it", async () => {
    await browser.takePasskeys();
    const address = email("browser");
    await open(server, "#/sign-up");
    await browser.route("sign-up");
    await browser.screenshot("sign-up");
    await browser.type("#sign-up-email", address);
    await browser.type("#sign-up-password", PASSWORD);
    await browser.click("#sign-up-submit");
    await browser.route("account");
    assert.equal(await browser.text("#account-email"), `${address} (not verified yet)`);
    await browser.find("[data-testid=session][data-current=true]");
    assert.deepEqual(await browser.events(), ["SIGNED_IN"]);
    await browser.find("#no-passkeys");

    // The phone signs in too; the list shows both, with their devices.
    const phone = await phoneSignIn(server, address);
    await browser.click("#nav-account");
    await browser.find("[data-testid=session][data-current=false]");
    assert.match(await browser.text("[data-testid=session][data-current=false]"), /Safari 17 on iPhone/);
    assert.match(await browser.text("[data-testid=session][data-current=true]"), /Chrom\w+ \d+ on Linux/);
    await browser.screenshot("account");

    // Signing the phone out needs a fresh password: the app asks, then retries.
    await sleep(FRESH + 500);
    await browser.click("[data-testid=revoke-session]");
    await browser.find("#reauth-dialog[open]");
    assert.equal(await browser.run("return document.getElementById('reauth-passkey').hidden"), true);
    await browser.screenshot("confirm-password");
    await browser.type("#reauth-password", PASSWORD);
    await browser.click("#reauth-submit");
    await browser.until("one session left", async () =>
      (await browser.run("return document.querySelectorAll('[data-testid=session]').length")) === 1,
    );
    assert.equal(await meWith(server, phone), "REVOKED");
    const kinds = await browser.events();
    assert.ok(kinds.includes("REAUTHENTICATED") && kinds.includes("SESSION_REVOKED"), kinds);

    // A passkey, made by the browser's authenticator, then renamed.
    await browser.type("#passkey-add-name", "Test laptop");
    await browser.click("#passkey-add");
    await confirmIfAsked("[data-testid=passkey]");
    assert.equal(await browser.text("[data-testid=passkey-name]"), "Test laptop");
    assert.equal((await browser.passkeys()).length, 1);
    await browser.until("the passkey event", async () => (await browser.events()).includes("PASSKEY_ADDED"));
    await browser.click("[data-testid=passkey-rename]");
    await browser.type("[data-testid=passkey-rename-input]", "Work laptop");
    await browser.click("[data-testid=passkey-rename-save]");
    await browser.until("the new name", async () =>
      (await browser.text("[data-testid=passkey-name]")) === "Work laptop",
    );
    assert.match(await browser.text("[data-testid=passkey]"), /added .* · last used never/);
    await browser.screenshot("passkeys");

    // Signed out, the sign-in page offers the passkey in the e-mail field's
    // autofill; the virtual authenticator picks it at once. No address typed.
    await browser.click("#sign-out");
    await signedInWith("passkey");
    assert.match(await browser.text("[data-testid=passkey]"), /last used \d/);

    // TOTP: the QR code, the app's first code, then the recovery codes once.
    await browser.click("#totp-begin");
    await confirmIfAsked("#totp-enrolment");
    await browser.find("#totp-qr svg");
    await browser.screenshot("totp-enrolment");
    const uri = await browser.run("return document.getElementById('totp-uri').href");
    const authenticator = OTPAuth.URI.parse(uri);
    assert.equal(await browser.text("#totp-secret"), authenticator.secret.base32);
    await browser.type("#totp-code", authenticator.generate());
    await browser.click("#totp-confirm");
    await browser.find("#recovery-codes");
    const codes = await browser.run(
      "return [...document.querySelectorAll('[data-testid=recovery-code]')].map(e => e.textContent)",
    );
    assert.equal(codes.length, 10);
    await browser.screenshot("recovery-codes");
    await browser.click("#recovery-codes-done");
    assert.match(await browser.text("#totp-status"), /^On\. 10 recovery codes left/);
    await browser.until("the enrolment event", async () =>
      (await browser.events()).includes("SECOND_FACTOR_ENABLED"),
    );

    // The password, then the app's code. The passkey is out of the
    // authenticator meanwhile, or the sign-in page's autofill would use it.
    let held = await browser.takePasskeys();
    await signOut();
    assert.equal(await browser.text("#notice"), "You signed out.");
    await browser.screenshot("sign-in");
    await signInWithPassword(address);
    await browser.route("second-factor");
    await browser.find("#second-factor-passkey");
    await browser.screenshot("second-factor");
    // The enrolment used this period's code, and a code works only once.
    await browser.type("#second-factor-code", authenticator.generate({ timestamp: Date.now() + 30_000 }));
    await browser.click("#second-factor-submit");
    await browser.route("account");
    await signedInWith("password + authenticator app");

    // The password, then the passkey as the second factor; remember this browser.
    await signOut();
    await signInWithPassword(address);
    await browser.route("second-factor");
    await browser.givePasskeys(held);
    await browser.click("#remember-browser");
    await browser.click("#second-factor-passkey");
    await browser.route("account");
    await signedInWith("password + passkey");

    // The remembered browser skips the second factor.
    held = await browser.takePasskeys();
    await signOut();
    await signInWithPassword(address);
    await browser.route("account");
    await signedInWith("password + remembered browser");

    // The "Sign in with a passkey" button, once the autofill found nothing.
    await signOut();
    await browser.find("#sign-in-email[data-autofill=ended]");
    await browser.givePasskeys(held);
    await browser.click("#passkey-sign-in");
    await browser.route("account");
    await signedInWith("passkey");

    // Removing it needs a fresh proof: the passkey itself will do.
    await sleep(FRESH + 500);
    await browser.click("[data-testid=passkey-remove]");
    await browser.find("#reauth-dialog[open]");
    await browser.find("#reauth-passkey");
    await browser.screenshot("confirm-with-passkey");
    await browser.click("#reauth-passkey");
    await browser.find("#no-passkeys");
    assert.equal(await browser.text("#notice"), 'Removed the passkey "Work laptop".');
    await browser.until("the removal event", async () => (await browser.events()).includes("PASSKEY_REMOVED"));
    assert.match(await browser.text("[data-testid=event][data-kind=PASSKEY_REMOVED]"), /"Work laptop"/);
    await browser.screenshot("passkey-removed");

    // The browser still holds it, but the server no longer takes it.
    await browser.click("#sign-out");
    await browser.until("the passkey refused", () =>
      browser.run("return document.getElementById('notice').dataset.code === 'INVALID_PASSKEY'"),
    );
    assert.equal(await browser.run("return document.body.dataset.route"), "sign-in");
    await browser.takePasskeys();
  });

  test("warns before an idle session ends, stays signed in when asked, then says why it ended", async () => {
    await browser.takePasskeys();
    await open(brief, "#/sign-up");
    await browser.route("sign-up");
    await browser.type("#sign-up-email", email("browser-idle"));
    await browser.type("#sign-up-password", PASSWORD);
    await browser.click("#sign-up-submit");
    await browser.route("account");

    // 5 s idle, warned 3 s before: the banner shows about 2 s after the last request.
    await browser.find("#expiry-banner");
    assert.match(await browser.text("#expiry-text"), /signed out in \d second/);
    await browser.screenshot("expiry-warning");
    const stayed = Date.now();
    await browser.click("#stay-signed-in");
    await browser.until("the banner to go", () =>
      browser.run("return document.getElementById('expiry-banner').hidden"),
    );
    assert.equal(await browser.text("#notice"), "You're still signed in.");

    // Left alone again: warned once more, then signed out, with the reason.
    await browser.find("#expiry-banner");
    await browser.route("sign-in");
    assert.ok(Date.now() - stayed > 4_000, "staying signed in bought another idle window");
    assert.equal(
      await browser.text("#notice"),
      "You were signed out after a period of inactivity.",
    );
    await browser.screenshot("signed-out-idle");
  });

  test("signs up with a passkey alone, and will not remove the only way in", async () => {
    await browser.takePasskeys();
    const address = email("browser-passkey");
    await open(server, "#/sign-up");
    await browser.type("#sign-up-email", address);
    await browser.click("#passkey-sign-up");
    await browser.route("account");
    await signedInWith("passkey");
    assert.equal(await browser.text("[data-testid=passkey-name]"), "Passkey");
    assert.equal((await browser.passkeys()).length, 1);
    assert.match(await browser.text("[data-testid=event][data-kind=SIGNED_IN]"), /with passkey/);

    await browser.click("[data-testid=passkey-remove]");
    await confirmIfAsked("[data-testid=passkey]");
    await browser.until("the refusal", () =>
      browser.run("return document.getElementById('notice').dataset.code === 'LAST_SIGN_IN_METHOD'"),
    );
    await browser.find("[data-testid=passkey]");
    await browser.screenshot("last-sign-in-method");

    // Signed out, then back in from the autofill: a new session.
    const before = await browser.currentSession();
    await browser.click("#sign-out");
    await browser.until("a new session", async () => {
      const now = await browser.currentSession();
      return now && now !== before;
    });
    assert.equal(await browser.text("#account-email"), `${address} (not verified yet)`);
    await browser.takePasskeys();
    await signOut();
  });

  test("signs up with another provider's button, then back in with a code sent by e-mail", async () => {
    await browser.takePasskeys();
    const address = email("browser-provider");
    const sub = `ana-${process.pid}`;
    await provider.account(sub, address, true);
    await open(server, "#/sign-in");
    await browser.click("[data-testid=provider-sign-in][data-provider=test]");
    // The whole tab goes to the provider's page, and comes back signed up.
    await providerLogin(sub);
    await browser.route("account");
    await signedInWith("provider");
    // The provider proved the address, so the new account has it proven.
    assert.equal(await browser.text("#account-email"), address);
    assert.match(await browser.text("[data-testid=identity][data-provider=test]"), new RegExp(`^Test provider\\s+${address.replace(/[.+]/g, "\\$&")}`));
    assert.deepEqual((await browser.events()).sort(), ["PROVIDER_LINKED", "SIGNED_IN"]);
    // Back to the app's own address: no code or state left in it.
    assert.equal(await browser.run("return location.search + location.hash"), "#/account");

    // Unlinking needs a recent proof, and this account has no password or
    // passkey to confirm with: no dialog, it is told to sign in again.
    await sleep(FRESH + 500);
    await browser.click("[data-testid=identity-unlink]");
    await noticeCode("REAUTHENTICATION_REQUIRED");
    assert.equal(await browser.text("#notice"), "This needs a recent sign-in: sign out, sign in again, then try again.");
    assert.equal(await browser.run("return document.getElementById('reauth-dialog').open"), false);
    await browser.find("[data-testid=identity][data-provider=test]");

    // Signed out, "Email me a code": the address, then the 8 digits.
    await signOut();
    await browser.click("#to-email-code");
    await browser.route("email-code");
    await browser.type("#email-code-email", address);
    await browser.click("#email-code-send");
    await browser.find("#email-code");
    assert.match(await browser.text("#email-code-sent"), /^If an account has .*, we sent it a code\./);
    const code = await codeFromMail(server.mailDir, address);
    await browser.type("#email-code", code);
    await browser.screenshot("email-code");
    // A wrong code is refused; the right one still works after it.
    await browser.type("#email-code", code === "00000000" ? "11111111" : "00000000");
    await browser.click("#email-code-submit");
    await noticeCode("INVALID_EMAIL_CODE");
    await browser.type("#email-code", code);
    await browser.click("#email-code-submit");
    await browser.route("account");
    await signedInWith("e-mail code");
    await browser.find("[data-testid=identity][data-provider=test]");
    await signOut();
  });

  test("sends a provider's sign-in to the address's account, links it there in a pop-up, signs in with it, and unlinks it", async () => {
    await browser.takePasskeys();
    const address = email("browser-link");
    const sub = `bo-${process.pid}`;
    await provider.account(sub, address, true);
    await open(server, "#/sign-up");
    await browser.type("#sign-up-email", address);
    await browser.type("#sign-up-password", PASSWORD);
    await browser.click("#sign-up-submit");
    await browser.route("account");
    await signOut();

    // The provider has the account's address, but may not join it by itself.
    await browser.click("[data-testid=provider-sign-in][data-provider=test]");
    await providerLogin(sub);
    await browser.route("sign-in");
    await noticeCode("LINK_REQUIRED");
    assert.equal(
      await browser.text("#notice"),
      "An account already uses the address you have at Test provider. Sign in to that account another way, " +
        "then link Test provider from its account page.",
    );
    await browser.screenshot("link-required");

    // Signed in with the password, a while ago: linking asks for it again,
    // then opens the provider in a pop-up, and this tab keeps its session.
    await signInWithPassword(address);
    await browser.route("account");
    await browser.find("#no-identities");
    await sleep(FRESH + 500);
    await browser.click("[data-testid=provider-link][data-provider=test]");
    await browser.find("#reauth-dialog[open]");
    await browser.type("#reauth-password", PASSWORD);
    await browser.click("#reauth-submit");
    const main = await browser.window();
    const popup = await browser.until("the provider's pop-up", async () =>
      (await browser.windows()).find((handle) => handle !== main),
    );
    await browser.switchTo(popup);
    await browser.type("#sub", sub);
    // The pop-up goes back to the app, which hands the answer over and closes it.
    await browser.click("#login-submit").catch((error) => {
      if (!/no such window|target window already closed|web view not found/.test(error.message)) throw error;
    });
    await browser.switchTo(main);
    // The link must come within FRESH of the confirmation; else it asks again.
    await confirmIfAsked("[data-testid=identity]");
    assert.match(await browser.text("[data-testid=identity][data-provider=test]"), /^Test provider/);
    assert.equal(await browser.text("#notice"), "Linked Test provider: you can sign in with it now.");
    await browser.until("the pop-up to close", async () => (await browser.windows()).length === 1);
    await browser.until("the link event", async () => (await browser.events()).includes("PROVIDER_LINKED"));
    await browser.screenshot("linked-provider");

    // Now its button signs in to this account.
    await signOut();
    await browser.click("[data-testid=provider-sign-in][data-provider=test]");
    await providerLogin(sub);
    await browser.route("account");
    await signedInWith("provider");
    assert.equal(await browser.text("#account-email"), `${address} (not verified yet)`);

    // Unlinked (a fresh sign-in again, if this one is too old by now); the
    // password stays as the way in.
    await browser.click("[data-testid=identity-unlink]");
    await confirmIfAsked("#no-identities");
    assert.equal(await browser.text("#notice"), "Unlinked Test provider.");
    await browser.find("[data-testid=provider-link][data-provider=test]");
    await browser.until("the unlink event", async () => (await browser.events()).includes("PROVIDER_UNLINKED"));
    await signOut();
  });
});
