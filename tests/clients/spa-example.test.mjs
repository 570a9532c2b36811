// The SPA example (examples/spa-client), compiled as it ships, runs its
// flow against the real binary under short timeouts: it refreshes before
// expiry while the user is active, lets an idle session lapse, stops at the
// absolute cap, says why a new password is too easy to guess, and works in
// trusted-documents mode.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { resolve } from "node:path";
import WebSocket from "ws";
import * as OTPAuth from "otpauth";
import { startGatehouse } from "./gatehouse.mjs";
import { EXAMPLE, MANIFEST, PASSWORD, email, sleep, tokenFromMail } from "./support.mjs";

const {
  GatehouseClient,
  GatehouseError,
  PasswordTooWeak,
  ReauthenticationRequired,
  SecondFactorRequired,
  SignedOut,
} = await import(resolve(EXAMPLE, "dist/client.js"));

/** Records the operations the example sends, by name. */
function recordOperations() {
  const sent = [];
  const original = globalThis.fetch;
  globalThis.fetch = (url, init) => {
    const body = JSON.parse(init.body);
    sent.push(body.query?.match(/^(query|mutation) (\w+)/)?.[2] ?? body.documentId);
    return original(url, init);
  };
  return { sent, restore: () => (globalThis.fetch = original) };
}

/** Keeps "the user" active every 200 ms for `ms`. */
async function activeFor(client, ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    client.noteActivity();
    await sleep(200);
  }
}

describe("the SPA example", () => {
  let server;
  before(async () => {
    server = await startGatehouse({
      GATEHOUSE_IDLE_TIMEOUT: "2s",
      GATEHOUSE_ABSOLUTE_TIMEOUT: "6s",
    });
  });
  after(() => server.stop());

  test("keeps an active user signed in until the absolute cap, and says why it ended", async () => {
    const recorder = recordOperations();
    try {
      const signOuts = [];
      const client = new GatehouseClient({
        endpoint: server.url,
        onSignedOut: (reason) => signOuts.push(reason),
        refreshMarginMs: 1_000,
      });
      await client.register(email("spa-active"), PASSWORD);
      // Twice the idle timeout, with no request but the example's own refreshes.
      await activeFor(client, 4_000);
      assert.ok(
        recorder.sent.filter((op) => op === "RefreshSession").length >= 2,
        `refreshes: ${recorder.sent}`,
      );
      const me = await client.me();
      assert.ok(Date.parse(me.session.expiresAt) <= Date.parse(me.session.absoluteExpiresAt));

      // No refresh goes past the cap: the session ends there, however active.
      await activeFor(client, 2_500);
      const error = await client.me().then(
        () => assert.fail("signed in past the absolute cap"),
        (e) => e,
      );
      assert.ok(error instanceof SignedOut);
      assert.equal(error.reason, "ABSOLUTE_TIMEOUT");
      assert.deepEqual(signOuts, ["ABSOLUTE_TIMEOUT"]);
    } finally {
      recorder.restore();
    }
  });

  test("verifies the address and resets a forgotten password through the e-mails", async () => {
    const signOuts = [];
    const client = new GatehouseClient({
      endpoint: server.url,
      onSignedOut: (reason) => signOuts.push(reason),
      refreshMarginMs: 1_000,
    });
    const address = email("spa-recovery");
    await client.register(address, PASSWORD);
    assert.equal((await client.me()).user.emailVerified, false);
    // "Verify your address": the link from the sign-up e-mail.
    const verify = await tokenFromMail(server.mailDir, address, "ghv_");
    assert.equal(GatehouseClient.tokenFrom(`?token=${verify}`), verify);
    assert.equal(await client.verifyEmail(verify), address);
    assert.equal((await client.me()).user.emailVerified, true);
    assert.equal(await client.resendVerificationEmail(), false);

    // "Forgot password", from a signed-out tab.
    const other = new GatehouseClient({ endpoint: server.url, onSignedOut: () => {} });
    await other.requestPasswordReset(address);
    await other.requestPasswordReset(email("nobody"));
    // The reset is looked up at a random moment up to 2 s later, the idle
    // timeout here: the signed-in tab stays in use meanwhile, as a user's would.
    const inUse = setInterval(() => client.me().catch(() => {}), 500);
    const reset = await tokenFromMail(server.mailDir, address, "ghr_").finally(() =>
      clearInterval(inUse),
    );
    // Too easy to guess: refused, and the link still works.
    await assert.rejects(
      other.resetPassword(reset, "password1"),
      (e) => e instanceof PasswordTooWeak && e.advice.length > 1,
    );
    assert.equal((await client.me()).user.email, address);
    assert.equal(await other.resetPassword(reset, "a brand new passphrase"), address);
    // The signed-in tab is signed out, and says why.
    await assert.rejects(client.me(), (e) => e instanceof SignedOut && e.reason === "PASSWORD_RESET");
    assert.deepEqual(signOuts, ["PASSWORD_RESET"]);
    await other.login(address, "a brand new passphrase");
    await assert.rejects(
      other.resetPassword(reset, "another passphrase"),
      (e) => e.code === "INVALID_RESET_TOKEN",
    );
    other.forget();
  });

  test("tells the user why a new password is too easy to guess, and changes nothing", async () => {
    const client = new GatehouseClient({ endpoint: server.url, onSignedOut: () => {} });
    const address = email("spa-quality");
    const weak = await client.register(address, "password1").then(
      () => assert.fail("a common password was accepted"),
      (e) => e,
    );
    assert.ok(weak instanceof PasswordTooWeak && weak instanceof GatehouseError);
    assert.equal(weak.code, "PASSWORD_TOO_WEAK");
    assert.equal(weak.warning, "This is a very common password.");
    assert.ok(weak.suggestions.length > 0 && weak.suggestions.every((s) => typeof s === "string"));
    assert.deepEqual(weak.advice, [weak.warning, ...weak.suggestions]);
    assert.ok(weak.score < weak.minScore, `${weak.score} < ${weak.minScore}`);
    assert.match(weak.message, /too easy to guess/);

    await client.register(address, PASSWORD);
    // Built from the address: refused, and the password stays as it was.
    const derived = `${address.split("@")[0]}2024`;
    await assert.rejects(
      client.changePassword(PASSWORD, derived),
      (e) => e instanceof PasswordTooWeak && /e-mail address/.test(e.warning),
    );
    await client.logout();
    await client.login(address, PASSWORD);
    assert.equal(await client.changePassword(PASSWORD, "a brand new passphrase"), 0);
    await client.logout();
  });

  test("lets an idle user's session lapse without refreshing it", async () => {
    const recorder = recordOperations();
    try {
      const signOuts = [];
      const client = new GatehouseClient({
        endpoint: server.url,
        onSignedOut: (reason) => signOuts.push(reason),
        refreshMarginMs: 1_000,
      });
      await client.register(email("spa-idle"), PASSWORD);
      await sleep(2_500);
      assert.ok(!recorder.sent.includes("RefreshSession"), `sent: ${recorder.sent}`);
      await assert.rejects(client.me(), (e) => e instanceof SignedOut && e.reason === "IDLE_TIMEOUT");
      assert.deepEqual(signOuts, ["IDLE_TIMEOUT"]);
    } finally {
      recorder.restore();
    }
  });

  test("asks the user to confirm their password when an operation needs a fresh one", async () => {
    const fresh = await startGatehouse({ GATEHOUSE_FRESH_AGE: "1s" });
    try {
      const asked = [];
      const answers = [null, PASSWORD];
      const client = new GatehouseClient({
        endpoint: fresh.url,
        onSignedOut: () => {},
        confirmPassword: async () => {
          asked.push(Date.now());
          return answers.shift();
        },
      });
      const address = email("spa-step-up");
      await client.register(address, PASSWORD);
      const phone = new GatehouseClient({ endpoint: fresh.url, onSignedOut: () => {} });
      await phone.login(address, PASSWORD);
      phone.forget();
      await sleep(1_200);
      // The user cancels: nothing happens, and the reason is clear.
      await assert.rejects(client.revokeOtherSessions(), (e) => e instanceof ReauthenticationRequired);
      // The user confirms: the password is proven and the operation retried.
      assert.equal(await client.revokeOtherSessions(), 1);
      assert.equal(asked.length, 2);
      const me = await client.me();
      assert.equal(me.sessions.length, 1);
      await client.logout();
    } finally {
      await fresh.stop();
    }
  });

  test("warns before the end, stays signed in when asked, and signs out the moment it ends", async () => {
    const live = await startGatehouse({
      GATEHOUSE_IDLE_TIMEOUT: "3s",
      GATEHOUSE_EXPIRY_WARNING: "1s",
    });
    try {
      const signOuts = [];
      const warnings = [];
      const client = new GatehouseClient({
        endpoint: live.url,
        onSignedOut: (reason) => signOuts.push(reason),
        refreshMarginMs: 0,
      });
      await client.register(email("spa-live"), PASSWORD);
      const ended = new Promise((done) => {
        const stop = client.watch({
          webSocketImpl: WebSocket,
          onWarning: (secondsLeft, stay) => {
            warnings.push(secondsLeft);
            // The user clicks "stay signed in" the first time only.
            if (warnings.length === 1) stay();
          },
        });
        const poll = setInterval(() => {
          if (signOuts.length) {
            clearInterval(poll);
            stop();
            done();
          }
        }, 50);
      });
      const started = Date.now();
      await ended;
      const lasted = Date.now() - started;
      assert.deepEqual(signOuts, ["IDLE_TIMEOUT"]);
      assert.deepEqual(warnings, [1, 1]);
      // Staying signed in once bought a second idle window.
      assert.ok(lasted > 4_000, `signed out after ${lasted} ms`);
    } finally {
      await live.stop();
    }
  });

  test("runs by hash against its own manifest in trusted-documents mode", async () => {
    const trusted = await startGatehouse({ GATEHOUSE_TRUSTED_DOCUMENTS: MANIFEST });
    const recorder = recordOperations();
    try {
      const signOuts = [];
      const laptop = new GatehouseClient({
        endpoint: trusted.url,
        onSignedOut: (reason) => signOuts.push(reason),
        trustedDocuments: true,
      });
      const phone = new GatehouseClient({
        endpoint: trusted.url,
        onSignedOut: (reason) => signOuts.push(reason),
        trustedDocuments: true,
      });
      const address = email("spa-trusted");
      await laptop.register(address, PASSWORD);
      await phone.login(address, PASSWORD);
      const me = await laptop.me();
      assert.equal(me.user.email, address);
      const other = me.sessions.find((s) => !s.current);
      await laptop.revokeSession(other.id);
      await assert.rejects(phone.me(), (e) => e instanceof SignedOut && e.reason === "REVOKED");
      await laptop.logout();
      assert.deepEqual(signOuts, ["REVOKED"]);
      assert.ok(
        recorder.sent.every((id) => /^[0-9a-f]{64}$/.test(id)),
        `sent: ${recorder.sent}`,
      );
    } finally {
      recorder.restore();
      await trusted.stop();
    }
  });
});

describe("the SPA example's second factor", () => {
  let server;
  before(async () => {
    server = await startGatehouse();
  });
  after(() => server.stop());

  test("enrols with the QR code, signs in with a code or a recovery code, and remembers the browser", async () => {
    const client = new GatehouseClient({ endpoint: server.url, onSignedOut: () => {} });
    const address = email("spa-2fa");
    await client.register(address, PASSWORD);
    const enrolment = await client.beginTotpEnrolment();
    assert.match(enrolment.qrCodeSvg, /^<\?xml[\s\S]*<svg/);
    // The user's app scans the QR code: otpauth reads the URI it holds.
    const app = OTPAuth.URI.parse(enrolment.uri);
    const recoveryCodes = await client.confirmTotpEnrolment(app.generate());
    assert.equal(recoveryCodes.length, 10);
    assert.equal((await client.secondFactor()).enabled, true);
    await client.logout();

    // Sign-in: the password, then the app's code ("remember this browser").
    const browser = new GatehouseClient({ endpoint: server.url, onSignedOut: () => {} });
    const asked = await browser.login(address, PASSWORD).then(
      () => assert.fail("signed in without the code"),
      (e) => e,
    );
    assert.ok(asked instanceof SecondFactorRequired, String(asked));
    assert.deepEqual(asked.methods, ["TOTP", "RECOVERY_CODE"]);
    const next = app.generate({ timestamp: Date.now() + 30_000 });
    await browser.completeSignIn(asked.challenge, { totpCode: next }, true);
    const remembered = (await browser.secondFactor()).rememberedDevices;
    assert.equal(remembered.length, 1);
    await browser.logout();
    // The remembered browser is not asked again.
    await browser.login(address, PASSWORD);
    assert.equal((await browser.me()).user.email, address);
    await browser.logout();

    // Another browser, without the phone: "use a recovery code".
    const other = new GatehouseClient({ endpoint: server.url, onSignedOut: () => {} });
    const again = await other.login(address, PASSWORD).catch((e) => e);
    assert.ok(again instanceof SecondFactorRequired, String(again));
    await other.completeSignIn(again.challenge, { recoveryCode: recoveryCodes[0] });
    assert.equal((await other.secondFactor()).recoveryCodesLeft, 9);
    // Signing out stops the refresh timer, so the test process can end.
    await other.logout();
  });
});
