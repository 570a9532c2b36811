// The account page: who you are, where you are signed in, what happened
// lately, passkeys, other providers and the second factor.
import type { AccountQuery, SignInOptionsQuery } from "../src/gql/graphql.js";
import { linkWith } from "./providers.js";
import { action, h, methods, onSubmit, showError, when, words, type Ctx, type Page } from "./ui.js";

type Me = AccountQuery["me"];
type Provider = SignInOptionsQuery["signInOptions"]["providers"][number];

export function accountPage(ctx: Ctx): Page {
  const email = h("p", { id: "account-email" });
  const sessions = h("ul", { id: "sessions", class: "rows" });
  const revokeOthers = h("button", { id: "revoke-others", type: "button", hidden: true }, "Sign out everywhere else");
  const events = h("ol", { id: "events", class: "rows" });
  const totp = totpSection(ctx, () => load());
  const passkeys = passkeySection(ctx, () => load());
  const providers = providerSection(ctx, () => load());

  const load = async () => {
    // Without the options, the page still shows the account, and links no provider.
    const noOptions = { providers: [], emailCode: false };
    const [me, options] = await Promise.all([
      ctx.client.account(),
      ctx.signInOptions().catch(() => noOptions),
    ]);
    ctx.account = me;
    const providerName = (id: string) => options.providers.find((p) => p.id === id)?.name ?? id;
    email.textContent = `${me.user.email}${me.user.emailVerified ? "" : " (not verified yet)"}`;
    sessions.replaceChildren(...me.sessions.map((session) => sessionRow(ctx, session, load)));
    revokeOthers.hidden = me.sessions.length < 2;
    events.replaceChildren(...me.securityEvents.edges.map(({ node }) => eventRow(node, providerName)));
    totp.show(me);
    passkeys.show(me);
    providers.show(me, options.providers, providerName);
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
    providers.element,
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

function eventRow(event: Me["securityEvents"]["edges"][number]["node"], providerName: (id: string) => string) {
  const detail = [
    event.passkeyName ? `"${event.passkeyName}"` : "",
    event.provider ? providerName(event.provider) : "",
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

/** Other providers: the linked ones (unlink), and "Link …" for the others. */
function providerSection(ctx: Ctx, reload: () => Promise<void>) {
  const list = h("ul", { id: "identities", class: "rows" });
  const buttons = h("div", { id: "provider-links" });
  const element = h("div", { id: "provider-section", hidden: true }, h("h2", {}, "Other ways to sign in"), list, buttons);
  // Linking waits for the pop-up; "Cancel" gives up waiting.
  let waiting: AbortController | undefined;
  const show = (me: Me, providers: readonly Provider[], name: (id: string) => string) => {
    list.replaceChildren(
      ...(me.externalIdentities.length
        ? me.externalIdentities.map((identity) => identityRow(ctx, identity, name(identity.provider), reload))
        : [h("li", { id: "no-identities" }, "No other provider is linked to this account.")]),
    );
    const linked = new Set(me.externalIdentities.map((identity) => identity.provider));
    buttons.replaceChildren(
      ...providers
        .filter((provider) => !linked.has(provider.id))
        .map((provider) => {
          const link = h("button", { type: "button", "data-testid": "provider-link", "data-provider": provider.id }, `Link ${provider.name}`);
          const cancel = h("button", { type: "button", "data-testid": "provider-link-cancel", hidden: true }, "Cancel");
          link.addEventListener("click", () =>
            action(ctx, link, async () => {
              waiting?.abort();
              waiting = new AbortController();
              cancel.hidden = false;
              try {
                await linkWith(ctx, provider, waiting.signal);
              } finally {
                cancel.hidden = true;
              }
              ctx.notice(`Linked ${provider.name}: you can sign in with it now.`);
              await reload();
            }),
          );
          cancel.addEventListener("click", () => waiting?.abort());
          return h("span", {}, link, cancel);
        }),
    );
    element.hidden = !providers.length && !me.externalIdentities.length;
  };
  return { element, show };
}

function identityRow(ctx: Ctx, identity: Me["externalIdentities"][number], name: string, reload: () => Promise<void>) {
  const unlink = h("button", { type: "button", "data-testid": "identity-unlink" }, "Unlink");
  unlink.addEventListener("click", () =>
    action(ctx, unlink, async () => {
      await ctx.client.unlinkProvider(identity.id);
      ctx.notice(`Unlinked ${name}.`);
      await reload();
    }),
  );
  return h(
    "li",
    { "data-testid": "identity", "data-provider": identity.provider },
    h("strong", {}, name),
    identity.email && h("span", { "data-testid": "identity-email" }, identity.email),
    h("small", {}, `Linked ${when(identity.linkedAt)} · last used ${when(identity.lastUsedAt)}`),
    unlink,
  );
}
