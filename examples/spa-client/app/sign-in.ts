// The signed-out pages: sign in (a password, a passkey, another provider),
// a code by e-mail, sign up, and the second-factor step.
import { GatehouseError, SecondFactorRequired, type SecondFactorCode } from "../src/client.js";
import { signInWith } from "./providers.js";
import { action, h, onSubmit, showError, type Ctx, type Page } from "./ui.js";

const passkeysWork = typeof window.PublicKeyCredential === "function";

export function signInPage(ctx: Ctx): Page {
  const email = h("input", { id: "sign-in-email", type: "email", autocomplete: "username", required: true });
  const password = h("input", { id: "sign-in-password", type: "password", autocomplete: "current-password", required: true });
  const rememberMe = h("input", { id: "remember-me", type: "checkbox" });
  const form = h(
    "form",
    { id: "sign-in-form" },
    h("label", {}, "E-mail", email),
    h("label", {}, "Password", password),
    h("label", { class: "check" }, rememberMe, "Keep me signed in on this device"),
    h("button", { id: "sign-in-submit", type: "submit" }, "Sign in"),
  );
  onSubmit(ctx, form, async () => {
    try {
      await ctx.client.login(email.value, password.value, rememberMe.checked);
    } catch (error) {
      if (!(error instanceof SecondFactorRequired)) throw error;
      ctx.challenge = error;
      ctx.go("#/second-factor");
      return;
    }
    ctx.signedIn();
  });

  // Autofill (conditional UI): the passkeys show under the e-mail field.
  let autofill = new AbortController();
  // `data-autofill` says whether the passkeys are on offer there.
  const offerInAutofill = async (): Promise<void> => {
    if (!passkeysWork || !(await PublicKeyCredential.isConditionalMediationAvailable?.())) return;
    email.autocomplete = "username webauthn";
    const { signal } = autofill;
    email.dataset.autofill = "offered";
    try {
      await ctx.client.signInWithPasskey({ conditional: true, signal, rememberMe: rememberMe.checked });
    } catch (error) {
      email.dataset.autofill = "ended";
      if (signal.aborted || error instanceof DOMException) return; // left, or a button took over
      showError(ctx, error);
      // The ceremony lives 5 minutes; offer a new one if it lapsed.
      if (error instanceof GatehouseError && error.code === "INVALID_CEREMONY") return offerInAutofill();
      return;
    }
    ctx.signedIn();
  };
  void offerInAutofill();

  const passkey = h("button", { id: "passkey-sign-in", type: "button", hidden: !passkeysWork }, "Sign in with a passkey");
  passkey.addEventListener("click", () =>
    action(ctx, passkey, async () => {
      autofill.abort(); // the browser runs one request at a time
      autofill = new AbortController();
      try {
        await ctx.client.signInWithPasskey({ rememberMe: rememberMe.checked });
      } catch (error) {
        void offerInAutofill();
        throw error;
      }
      ctx.signedIn();
    }),
  );
  // The server's other ways in: a button per provider, and a code by e-mail.
  const providers = h("span", { id: "provider-buttons" });
  const emailCode = h("button", { id: "to-email-code", type: "button", hidden: true }, "Email me a code");
  emailCode.addEventListener("click", () => ctx.go("#/email-code"));
  ctx.signInOptions().then((options) => {
    emailCode.hidden = !options.emailCode;
    providers.replaceChildren(
      ...options.providers.map((provider) => {
        const button = h("button", { type: "button", "data-testid": "provider-sign-in", "data-provider": provider.id }, `Sign in with ${provider.name}`);
        button.addEventListener("click", () =>
          action(ctx, button, () => signInWith(ctx, provider, rememberMe.checked)),
        );
        return button;
      }),
    );
  }, (error) => showError(ctx, error));

  const element = h(
    "section",
    { id: "sign-in-page" },
    h("h1", {}, "Sign in"),
    form,
    h("div", { class: "alternatives" }, passkey, providers, emailCode),
    h("p", {}, "No account yet? ", h("a", { href: "#/sign-up", id: "to-sign-up" }, "Create one")),
  );
  return { element, leave: () => autofill.abort() };
}

/** "Email me a code": the address, then the 8 digits from the e-mail. */
export function emailCodePage(ctx: Ctx): Page {
  const email = h("input", { id: "email-code-email", type: "email", autocomplete: "username", required: true });
  const ask = h(
    "form",
    { id: "email-code-request-form" },
    h("label", {}, "E-mail", email),
    h("button", { id: "email-code-send", type: "submit" }, "Send me a code"),
  );
  const sent = h("p", { id: "email-code-sent" });
  const code = h("input", {
    id: "email-code",
    autocomplete: "one-time-code",
    inputmode: "numeric",
    pattern: "[0-9]{8}",
    maxlength: "8",
    required: true,
  });
  const rememberMe = h("input", { id: "email-code-remember-me", type: "checkbox" });
  const again = h("button", { id: "email-code-again", type: "button" }, "Send another code");
  const enter = h(
    "form",
    { id: "email-code-form", hidden: true },
    sent,
    h("label", {}, "The 8-digit code", code),
    h("label", { class: "check" }, rememberMe, "Keep me signed in on this device"),
    h("button", { id: "email-code-submit", type: "submit" }, "Sign in"),
    again,
  );
  // The challenge stays in this page's memory: the code counts only with it.
  let challenge = "";
  onSubmit(ctx, ask, async () => {
    const asked = await ctx.client.requestEmailSignInCode(email.value);
    challenge = asked.challenge;
    const until = new Date(asked.expiresAt).toLocaleTimeString();
    sent.textContent = `If an account has ${email.value}, we sent it a code. Type it here by ${until}.`;
    ask.hidden = true;
    enter.hidden = false;
    code.value = "";
    code.focus();
  });
  onSubmit(ctx, enter, async () => {
    try {
      await ctx.client.signInWithEmailCode(challenge, code.value.trim(), rememberMe.checked);
    } catch (error) {
      if (!(error instanceof SecondFactorRequired)) throw error;
      ctx.challenge = error;
      ctx.go("#/second-factor");
      return;
    }
    ctx.signedIn();
  });
  again.addEventListener("click", () => {
    enter.hidden = true;
    ask.hidden = false;
    email.focus();
  });
  const element = h(
    "section",
    { id: "email-code-page" },
    h("h1", {}, "Sign in with a code"),
    h("p", {}, "We send a code to your address; it signs you in once, in this tab."),
    ask,
    enter,
    h("p", {}, h("a", { href: "#/sign-in", id: "email-code-back" }, "Other ways to sign in")),
  );
  return { element };
}

export function signUpPage(ctx: Ctx): Page {
  const email = h("input", { id: "sign-up-email", type: "email", autocomplete: "username", required: true });
  const password = h("input", { id: "sign-up-password", type: "password", autocomplete: "new-password", required: true });
  const form = h(
    "form",
    { id: "sign-up-form" },
    h("label", {}, "E-mail", email),
    h("label", {}, "Password", password),
    h("button", { id: "sign-up-submit", type: "submit" }, "Create account"),
  );
  onSubmit(ctx, form, async () => {
    await ctx.client.register(email.value, password.value);
    ctx.signedIn();
  });
  // A passkey instead of a password: only the address is needed.
  const passkey = h("button", { id: "passkey-sign-up", type: "button", hidden: !passkeysWork }, "Sign up with a passkey");
  passkey.addEventListener("click", () =>
    action(ctx, passkey, async () => {
      if (!email.reportValidity()) return;
      await ctx.client.signUpWithPasskey(email.value);
      ctx.signedIn();
    }),
  );
  const element = h(
    "section",
    { id: "sign-up-page" },
    h("h1", {}, "Create an account"),
    form,
    h("div", { class: "alternatives" }, passkey),
    h("p", {}, "Have an account? ", h("a", { href: "#/sign-in", id: "to-sign-in" }, "Sign in")),
  );
  return { element };
}

/** After SECOND_FACTOR_REQUIRED: a code from the app, or a recovery code. */
export function secondFactorPage(ctx: Ctx): Page {
  const challenge = ctx.challenge;
  if (!challenge) {
    ctx.go("#/sign-in");
    return { element: h("section") };
  }
  let recovery = false;
  const label = h("span", {}, "Code from your authenticator app");
  const code = h("input", { id: "second-factor-code", autocomplete: "one-time-code", inputmode: "numeric", required: true });
  const remember = h("input", { id: "remember-browser", type: "checkbox" });
  const form = h(
    "form",
    { id: "second-factor-form" },
    h("label", {}, label, code),
    h("label", { class: "check" }, remember, "Remember this browser"),
    h("button", { id: "second-factor-submit", type: "submit" }, "Verify"),
  );
  const finish = async (proof: SecondFactorCode) => {
    await ctx.client.completeSignIn(challenge.challenge, proof, remember.checked);
    ctx.challenge = null;
    ctx.signedIn();
  };
  onSubmit(ctx, form, () => finish(recovery ? { recoveryCode: code.value } : { totpCode: code.value }));

  const toggle = h("button", { id: "use-recovery-code", type: "button" }, "Use a recovery code instead");
  toggle.addEventListener("click", () => {
    recovery = !recovery;
    label.textContent = recovery ? "One of your recovery codes" : "Code from your authenticator app";
    toggle.textContent = recovery ? "Use the authenticator app instead" : "Use a recovery code instead";
    code.inputMode = recovery ? "text" : "numeric";
    code.value = "";
    code.focus();
  });
  const passkey = h("button", { id: "second-factor-passkey", type: "button" }, "Use a passkey");
  passkey.addEventListener("click", () =>
    action(ctx, passkey, async () => {
      await ctx.client.completeSignInWithPasskey(challenge.challenge, remember.checked);
      ctx.challenge = null;
      ctx.signedIn();
    }),
  );
  const element = h(
    "section",
    { id: "second-factor-page" },
    h("h1", {}, "Two-step verification"),
    form,
    h(
      "div",
      { class: "alternatives" },
      passkeysWork && challenge.methods.includes("PASSKEY") && passkey,
      challenge.methods.includes("RECOVERY_CODE") && toggle,
    ),
    h("p", {}, h("a", { href: "#/sign-in" }, "Start over")),
  );
  return { element };
}
