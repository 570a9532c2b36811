// The app's shell: the client for the endpoint in `?api=`, hash routes,
// the return from another provider, the expiry banner and the "confirm
// it's you" dialog.
import { GatehouseClient, explain, type SignOutReason } from "../src/client.js";
import type { ReauthenticateInput, SignInOptionsQuery } from "../src/gql/graphql.js";
import { accountPage } from "./account.js";
import { callbackPage } from "./providers.js";
import { emailCodePage, secondFactorPage, signInPage, signUpPage } from "./sign-in.js";
import { action, h, type Ctx, type Page } from "./ui.js";

// Served from another origin than the API, so the endpoint is given at
// run time: `?api=https://id.example.com/graphql`, else this origin's.
// This tab remembers it: a provider sends the browser back without it.
const API = "gatehouse.api";
const givenApi = new URLSearchParams(location.search).get("api");
if (givenApi) sessionStorage.setItem(API, givenApi);
const endpoint =
  givenApi ?? sessionStorage.getItem(API) ?? new URL("/graphql", location.origin).href;
// Back from a provider (`?code=…&state=…`): its answer goes to the
// callback page, and off the address bar and the history.
const providerReturn = GatehouseClient.providerReturnFrom(location.search);
if (providerReturn) history.replaceState(null, "", `${location.pathname}#/callback`);
const KNOWN_DEVICE = "gatehouse.knownDevice";
const RECOVERY_CODE = /^\w{4}-\w{4}-\w{4}$/;

const notice = document.getElementById("notice")!;
const pageRoot = document.getElementById("page")!;
const nav = document.getElementById("nav")!;

let signedIn = false;
let stopWatching: (() => void) | undefined;

const client = new GatehouseClient({
  endpoint,
  onSignedOut: (reason) => signedOut(reason),
  confirmIdentity: () => dialog.ask(),
});
// The known-device token is no session: it only spares this browser the
// lockouts that strangers' guesses cause, and the second factor if remembered.
client.knownDevice = localStorage.getItem(KNOWN_DEVICE);
for (const event of ["pointerdown", "keydown"]) {
  document.addEventListener(event, () => client.noteActivity(), { capture: true });
}

let options: Promise<SignInOptionsQuery["signInOptions"]> | undefined;

const ctx: Ctx = {
  client,
  challenge: null,
  account: null,
  providerReturn,
  signInOptions() {
    options ??= client.signInOptions().catch((error: unknown) => {
      options = undefined;
      throw error;
    });
    return options;
  },
  go(route) {
    if (location.hash === route) render();
    else location.hash = route;
  },
  notice(text, kind = "info", code) {
    notice.textContent = text;
    notice.className = kind;
    notice.dataset.code = code ?? "";
    notice.hidden = !text;
  },
  signedIn() {
    if (client.knownDevice) localStorage.setItem(KNOWN_DEVICE, client.knownDevice);
    signedIn = true;
    watchSession();
    ctx.go("#/account");
  },
};

function signedOut(reason: SignOutReason) {
  stopWatching?.();
  banner.hide();
  const wasSignedIn = signedIn;
  signedIn = false;
  ctx.account = null;
  if (wasSignedIn) ctx.notice(explain(reason), "info", reason);
  ctx.go("#/sign-in");
}

// Routes.
const routes: Record<string, (ctx: Ctx) => Page> = {
  "#/sign-in": signInPage,
  "#/sign-up": signUpPage,
  "#/second-factor": secondFactorPage,
  "#/email-code": emailCodePage,
  "#/callback": callbackPage,
  "#/account": accountPage,
};
let current: Page | undefined;

function render() {
  let route = location.hash in routes ? location.hash : "#/sign-in";
  // Signed in, the account page only; signed out, anything but it.
  if (signedIn) route = "#/account";
  else if (route === "#/account") route = "#/sign-in";
  if (route !== location.hash) {
    location.replace(route);
    return;
  }
  current?.leave?.();
  current = routes[route]!(ctx);
  pageRoot.replaceChildren(current.element);
  document.body.dataset.route = route.slice(2);
  nav.hidden = !signedIn;
}
window.addEventListener("hashchange", render);
// "Account" again reloads the page's data.
document.getElementById("nav-account")!.addEventListener("click", (event) => {
  event.preventDefault();
  ctx.go("#/account");
});

const signOut = document.getElementById("sign-out") as HTMLButtonElement;
signOut.addEventListener("click", () =>
  action(ctx, signOut, async () => {
    // Stopped first, or the stream's ENDED would read as "signed out elsewhere".
    stopWatching?.();
    banner.hide();
    try {
      await client.logout();
    } finally {
      signedIn = false;
      ctx.account = null;
      ctx.go("#/sign-in");
    }
    ctx.notice("You signed out.");
  }),
);

// The live expiry warning, from the `sessionStatus` subscription.
const banner = (() => {
  const text = h("span", { id: "expiry-text" });
  const stay = h("button", { id: "stay-signed-in", type: "button" }, "Stay signed in");
  const element = h("div", { id: "expiry-banner", role: "alert", hidden: true }, text, stay);
  document.getElementById("banner-slot")!.append(element);
  let tick: ReturnType<typeof setInterval> | undefined;
  let keep: () => Promise<void> = async () => {};
  stay.addEventListener("click", () =>
    action(ctx, stay, async () => {
      await keep();
      hide();
      ctx.notice("You're still signed in.");
    }),
  );
  function hide() {
    clearInterval(tick);
    element.hidden = true;
  }
  function show(secondsLeft: number, stayAction: () => Promise<void>) {
    keep = stayAction;
    const deadline = Date.now() + secondsLeft * 1000;
    const update = () => {
      const left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
      text.textContent = `You will be signed out in ${left} second${left === 1 ? "" : "s"} for inactivity.`;
    };
    clearInterval(tick);
    update();
    tick = setInterval(update, 1000);
    element.hidden = false;
  }
  return { show, hide };
})();

function watchSession() {
  stopWatching?.();
  stopWatching = client.watch({
    onWarning: (secondsLeft, stay) => banner.show(secondsLeft, stay),
    onCurrent: () => banner.hide(),
  });
}

// "Confirm it's you", when a sensitive operation needs a fresh proof.
const dialog = (() => {
  const password = h("input", { id: "reauth-password", type: "password", autocomplete: "current-password" });
  const code = h("input", { id: "reauth-code", autocomplete: "one-time-code", inputmode: "numeric" });
  const codeLabel = h("label", {}, "Code from your authenticator app, or a recovery code", code);
  const passwordLabel = h("label", {}, "Password", password);
  const submit = h("button", { id: "reauth-submit", type: "submit" }, "Confirm");
  const cancel = h("button", { id: "reauth-cancel", type: "button" }, "Cancel");
  const passkey = h("button", { id: "reauth-passkey", type: "button" }, "Use a passkey instead");
  const error = h("p", { id: "reauth-error", class: "error", hidden: true });
  const form = h(
    "form",
    { id: "reauth-form" },
    h("h2", {}, "Confirm it's you"),
    h("p", {}, "This needs your password again, or a passkey."),
    passwordLabel,
    codeLabel,
    error,
    h("div", { class: "buttons" }, submit, cancel),
    passkey,
  );
  const element = h("dialog", { id: "reauth-dialog" }, form);
  document.body.append(element);
  let settle: ((input: ReauthenticateInput | null) => void) | undefined;
  const finish = (input: ReauthenticateInput | null) => {
    settle?.(input);
    settle = undefined;
    if (element.open) element.close();
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const proof = RECOVERY_CODE.test(code.value) ? { recoveryCode: code.value } : { totpCode: code.value };
    finish(code.value ? { password: password.value, ...proof } : { password: password.value });
  });
  cancel.addEventListener("click", () => finish(null));
  // The passkey's answer goes to `reauthenticate` in place of the password.
  passkey.addEventListener("click", async () => {
    passkey.disabled = true;
    error.hidden = true;
    try {
      finish({ passkey: await client.passkeyProof() });
    } catch (e) {
      error.textContent = e instanceof Error ? e.message : String(e);
      error.hidden = false;
    } finally {
      passkey.disabled = false;
    }
  });
  element.addEventListener("close", () => finish(null));
  return {
    ask(): Promise<ReauthenticateInput | null> {
      // An account with neither (only providers or e-mail codes) cannot
      // confirm here: it signs in again (see showError).
      const account = ctx.account;
      if (account && !account.hasPassword && !account.passkeys.length) return Promise.resolve(null);
      password.value = "";
      code.value = "";
      passwordLabel.hidden = submit.hidden = account?.hasPassword === false;
      codeLabel.hidden = !account?.secondFactor.enabled || account.hasPassword === false;
      passkey.hidden = !account?.passkeys.length;
      error.hidden = true;
      element.showModal();
      password.focus();
      return new Promise((resolve) => (settle = resolve));
    },
  };
})();

render();
