// The signed-out pages: sign in, sign up, and the second-factor step.
import { SecondFactorRequired } from "../src/client.js";
import { h, onSubmit, type Ctx, type Page } from "./ui.js";

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
  const element = h(
    "section",
    { id: "sign-in-page" },
    h("h1", {}, "Sign in"),
    form,
    h("p", {}, "No account yet? ", h("a", { href: "#/sign-up", id: "to-sign-up" }, "Create one")),
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
  const element = h(
    "section",
    { id: "sign-up-page" },
    h("h1", {}, "Create an account"),
    form,
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
  const finish = async (proof: Parameters<Ctx["client"]["completeSignIn"]>[1]) => {
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
  const element = h(
    "section",
    { id: "second-factor-page" },
    h("h1", {}, "Two-step verification"),
    form,
    h(
      "div",
      { class: "alternatives" },
      challenge.methods.includes("RECOVERY_CODE") && toggle,
    ),
    h("p", {}, h("a", { href: "#/sign-in" }, "Start over")),
  );
  return { element };
}
