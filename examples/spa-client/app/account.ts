// The account page: who you are, where you are signed in, what happened
// lately, passkeys and the second factor.
import type { AccountQuery } from "../src/gql/graphql.js";
import { action, h, methods, onSubmit, showError, when, words, type Ctx, type Page } from "./ui.js";

type Me = AccountQuery["me"];

export function accountPage(ctx: Ctx): Page {
  const email = h("p", { id: "account-email" });
  const sessions = h("ul", { id: "sessions", class: "rows" });
  const revokeOthers = h("button", { id: "revoke-others", type: "button", hidden: true }, "Sign out everywhere else");
  const events = h("ol", { id: "events", class: "rows" });
  const totp = totpSection(ctx, () => load());
  const passkeys = passkeySection(ctx, () => load());

  const load = async () => {
    const me = await ctx.client.account();
    ctx.account = me;
    email.textContent = `${me.user.email}${me.user.emailVerified ? "" : " (not verified yet)"}`;
    sessions.replaceChildren(...me.sessions.map((session) => sessionRow(ctx, session, load)));
    revokeOthers.hidden = me.sessions.length < 2;
    events.replaceChildren(...me.securityEvents.edges.map(({ node }) => eventRow(node)));
    totp.show(me);
    passkeys.show(me);
  };
  revokeOthers.addEventListener("click", () =>
    action(ctx, revokeOthers, async () => {
      const count = await ctx.client.revokeOtherSessions();
      ctx.notice(`Signed out ${count} other session${count === 1 ? "" : "s"}.`);
      await load();
    }),
  );

  const element = h(
    "section",
    { id: "account-page" },
    h("h1", {}, "Your account"),
    email,
    h("h2", {}, "Where you're signed in"),
    sessions,
    revokeOthers,
    passkeys.element,
    totp.element,
    h("h2", {}, "Recent security events"),
    events,
  );
  element.dataset.loaded = "false";
  load().then(
    () => (element.dataset.loaded = "true"),
    (error) => showError(ctx, error),
  );
  return { element };
}

function sessionRow(ctx: Ctx, session: Me["sessions"][number], reload: () => Promise<void>) {
  const { browser, os } = session.device;
  const revoke = h("button", { type: "button", "data-testid": "revoke-session" }, "Sign out");
  revoke.addEventListener("click", () =>
    action(ctx, revoke, async () => {
      await ctx.client.revokeSession(session.id);
      await reload();
    }),
  );
  return h(
    "li",
    { "data-testid": "session", "data-session-id": session.id, "data-current": String(session.current) },
    h("strong", {}, `${browser ?? "Unknown browser"} on ${os ?? "an unknown system"}`),
    session.current && h("span", { class: "badge" }, "This browser"),
    h(
      "small",
      {},
      `Signed in ${when(session.createdAt)} with ${methods(session.methods)}` +
        ` from ${session.ipAddress ?? "an unknown address"}; last active ${when(session.lastActivityAt)}`,
    ),
    !session.current && revoke,
  );
}

function eventRow(event: Me["securityEvents"]["edges"][number]["node"]) {
  const detail = [
    event.passkeyName ? `"${event.passkeyName}"` : "",
    event.methods?.length ? `with ${methods(event.methods)}` : "",
    event.revokedBy ? `by ${words(event.revokedBy).toLowerCase()}` : "",
    event.timeout ? `(${words(event.timeout).toLowerCase()} timeout)` : "",
    event.device.browser ? `· ${event.device.browser} on ${event.device.os ?? "?"}` : "",
    event.ipAddress ? `· ${event.ipAddress}` : "",
  ].filter(Boolean);
  return h(
    "li",
    { "data-testid": "event", "data-kind": event.kind },
    h("strong", {}, words(event.kind)),
    h("small", {}, `${when(event.occurredAt)} ${detail.join(" ")}`),
  );
}

/** TOTP: the status, then enrolment with the QR code, then the recovery codes once. */
function totpSection(ctx: Ctx, reload: () => Promise<void>) {
  const status = h("p", { id: "totp-status" });
  const begin = h("button", { id: "totp-begin", type: "button", hidden: true }, "Set up an authenticator app");
  const qr = h("div", { id: "totp-qr", class: "qr" });
  const secret = h("code", { id: "totp-secret" });
  const uri = h("a", { id: "totp-uri" }, "Open in an authenticator app on this device");
  const code = h("input", { id: "totp-code", autocomplete: "one-time-code", inputmode: "numeric", required: true });
  const confirm = h(
    "form",
    { id: "totp-confirm-form" },
    h("label", {}, "The code your app shows now", code),
    h("button", { id: "totp-confirm", type: "submit" }, "Turn on"),
  );
  const enrolment = h(
    "div",
    { id: "totp-enrolment", hidden: true },
    h("p", {}, "Scan this QR code with your authenticator app, or type the key."),
    qr,
    h("p", {}, "Key: ", secret, " · ", uri),
    confirm,
  );
  const codes = h("ol", { id: "recovery-codes-list" });
  const done = h("button", { id: "recovery-codes-done", type: "button" }, "I have saved them");
  const recovery = h(
    "div",
    { id: "recovery-codes", hidden: true },
    h("p", {}, "Your recovery codes. Each works once, and they are shown only now: keep them somewhere safe."),
    codes,
    done,
  );
  done.addEventListener("click", () => {
    codes.replaceChildren();
    recovery.hidden = true;
  });

  begin.addEventListener("click", () =>
    action(ctx, begin, async () => {
      const started = await ctx.client.beginTotpEnrolment();
      // Gatehouse renders this SVG itself from the secret: shown as it is.
      qr.innerHTML = started.qrCodeSvg;
      secret.textContent = started.secret;
      uri.href = started.uri;
      enrolment.hidden = false;
      begin.hidden = true;
      code.focus();
    }),
  );
  onSubmit(ctx, confirm, async () => {
    const recoveryCodes = await ctx.client.confirmTotpEnrolment(code.value);
    enrolment.hidden = true;
    qr.replaceChildren();
    code.value = "";
    codes.replaceChildren(...recoveryCodes.map((c) => h("li", { "data-testid": "recovery-code" }, c)));
    recovery.hidden = false;
    await reload();
  });

  const element = h(
    "div",
    { id: "totp-section" },
    h("h2", {}, "Authenticator app"),
    status,
    begin,
    enrolment,
    recovery,
  );
  const show = (me: Me) => {
    const { enabled, recoveryCodesLeft } = me.secondFactor;
    status.textContent = enabled
      ? `On. ${recoveryCodesLeft} recovery code${recoveryCodesLeft === 1 ? "" : "s"} left.`
      : "Off. Add a code from an app to sign-ins with your password.";
    status.dataset.enabled = String(enabled);
    begin.hidden = enabled || !enrolment.hidden;
  };
  return { element, show };
}

/** Passkeys: the list (rename, remove) and "Add a passkey". */
function passkeySection(ctx: Ctx, reload: () => Promise<void>) {
  const list = h("ul", { id: "passkeys", class: "rows" });
  const name = h("input", { id: "passkey-add-name", placeholder: "e.g. Work laptop", maxlength: "64" });
  const form = h(
    "form",
    { id: "passkey-add-form" },
    h("label", {}, "Name for a new passkey (optional)", name),
    h("button", { id: "passkey-add", type: "submit" }, "Add a passkey"),
  );
  onSubmit(ctx, form, async () => {
    const added = await ctx.client.addPasskey(name.value.trim() || undefined);
    name.value = "";
    ctx.notice(`Added the passkey "${added.name}".`);
    await reload();
  });
  const supported = typeof window.PublicKeyCredential === "function";
  const element = h(
    "div",
    { id: "passkey-section" },
    h("h2", {}, "Passkeys"),
    list,
    supported ? form : h("p", {}, "This browser cannot make passkeys."),
  );
  const show = (me: Me) => {
    list.replaceChildren(
      ...(me.passkeys.length
        ? me.passkeys.map((passkey) => passkeyRow(ctx, passkey, reload))
        : [h("li", { id: "no-passkeys" }, "No passkeys yet: add one to sign in without a password.")]),
    );
  };
  return { element, show };
}

function passkeyRow(ctx: Ctx, passkey: Me["passkeys"][number], reload: () => Promise<void>) {
  const rename = h("button", { type: "button", "data-testid": "passkey-rename" }, "Rename");
  const remove = h("button", { type: "button", "data-testid": "passkey-remove" }, "Remove");
  const row = h(
    "li",
    { "data-testid": "passkey", "data-passkey-id": passkey.id },
    h("strong", { "data-testid": "passkey-name" }, passkey.name),
    passkey.backedUp && h("span", { class: "badge" }, "Synced"),
    h(
      "small",
      {},
      `${passkey.authenticator ?? "Unknown authenticator"} · added ${when(passkey.createdAt)}` +
        ` · last used ${when(passkey.lastUsedAt)}`,
    ),
    rename,
    remove,
  );
  remove.addEventListener("click", () =>
    action(ctx, remove, async () => {
      await ctx.client.deletePasskey(passkey.id);
      ctx.notice(`Removed the passkey "${passkey.name}".`);
      await reload();
    }),
  );
  rename.addEventListener("click", () => {
    const input = h("input", { "data-testid": "passkey-rename-input", value: passkey.name, maxlength: "64", required: true });
    const cancel = h("button", { type: "button" }, "Cancel");
    const form = h(
      "form",
      { class: "inline" },
      input,
      h("button", { type: "submit", "data-testid": "passkey-rename-save" }, "Save"),
      cancel,
    );
    const before = [...row.childNodes];
    cancel.addEventListener("click", () => row.replaceChildren(...before));
    onSubmit(ctx, form, async () => {
      await ctx.client.renamePasskey(passkey.id, input.value.trim());
      await reload();
    });
    row.replaceChildren(form);
    input.select();
  });
  return row;
}
