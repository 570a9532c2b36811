// Other providers (OpenID Connect). Signing in sends this tab to the
// provider and back: the flow secret waits in sessionStorage, since the
// page is gone meanwhile. Linking keeps this tab, whose session lives only
// in memory, and sends a pop-up instead; the pop-up hands what the
// provider sent back to this tab over a BroadcastChannel.
//
// The redirect URI is this page's address without its query and hash
// (e.g. `http://localhost:5173/`): list exactly that in
// GATEHOUSE_OIDC_REDIRECT_URIS. The provider sends the browser back to it
// with `?code=…&state=…`, which main.ts takes off the address before
// showing `#/callback`.
import { LinkRequired, SecondFactorRequired, type ExternalIdentity, type ProviderReturn } from "../src/client.js";
import { h, showError, type Ctx, type Page } from "./ui.js";

/** The sign-in waiting for its provider, in this tab's sessionStorage. */
const PENDING = "gatehouse.providerSignIn";
/** Where a pop-up sends a return that is not its own tab's sign-in. */
const CHANNEL = "gatehouse.providerReturn";

interface Pending {
  purpose: "SIGN_IN";
  /** The flow secret (the PKCE verifier): only this tab can finish. */
  flow: string;
  /** The `state` in the provider's URL, so that a return is matched to its flow. */
  state: string;
  name: string;
  rememberMe: boolean;
}

interface Provider {
  id: string;
  name: string;
}

export const redirectUri = (): string => location.origin + location.pathname;

const stateOf = (authorizationUrl: string): string =>
  new URL(authorizationUrl).searchParams.get("state") ?? "";

/** "Sign in with …": keeps the flow for this tab, then leaves for the provider. */
export async function signInWith(ctx: Ctx, provider: Provider, rememberMe: boolean): Promise<void> {
  const started = await ctx.client.beginProviderSignIn(provider.id, redirectUri());
  const pending: Pending = {
    purpose: "SIGN_IN",
    flow: started.flow,
    state: stateOf(started.authorizationUrl),
    name: provider.name,
    rememberMe,
  };
  sessionStorage.setItem(PENDING, JSON.stringify(pending));
  location.assign(started.authorizationUrl);
}

/** This tab's pending sign-in if `state` is its own; taken, so it is used once. */
function takePending(state: string): Pending | null {
  const kept = sessionStorage.getItem(PENDING);
  if (!kept) return null;
  const pending = JSON.parse(kept) as Pending;
  if (pending.state !== state) return null;
  sessionStorage.removeItem(PENDING);
  return pending;
}

/** `#/callback`: the provider sent the browser back here. */
export function callbackPage(ctx: Ctx): Page {
  const status = h("p", { id: "callback-status" }, "Signing you in…");
  const element = h("section", { id: "callback-page" }, h("h1", {}, "Back from the provider"), status);
  const back = ctx.providerReturn;
  ctx.providerReturn = null;
  if (!back) {
    ctx.go("#/sign-in");
    return { element };
  }
  const pending = takePending(back.state);
  if (pending) void finishSignIn(ctx, pending, back);
  else handOver(back, status);
  return { element };
}

async function finishSignIn(ctx: Ctx, pending: Pending, back: ProviderReturn): Promise<void> {
  const { name } = pending;
  try {
    if ("error" in back) {
      ctx.go("#/sign-in");
      ctx.notice(`${name} did not sign you in (${back.description ?? back.error}).`, "error", "PROVIDER_ERROR");
      return;
    }
    await ctx.client.finishProviderSignIn({ flow: pending.flow, ...back }, pending.rememberMe);
  } catch (error) {
    if (error instanceof SecondFactorRequired) {
      ctx.challenge = error;
      ctx.go("#/second-factor");
      return;
    }
    ctx.go("#/sign-in");
    if (error instanceof LinkRequired) {
      ctx.notice(
        `An account already uses the address you have at ${name}. Sign in to that account another way, ` +
          `then link ${name} from its account page.`,
        "error",
        error.code,
      );
    } else {
      showError(ctx, error);
    }
    return;
  }
  ctx.signedIn();
}

/**
 * Not this tab's sign-in: most likely the pop-up of a link, whose flow the
 * tab that opened it holds. Hands the return over, and closes once taken.
 */
function handOver(back: ProviderReturn, status: HTMLElement): void {
  status.textContent = "Back to the app…";
  const channel = new BroadcastChannel(CHANNEL);
  const unclaimed = setTimeout(() => {
    channel.close();
    status.replaceChildren(
      "This sign-in was not started in this browser tab, or it has expired. ",
      h("a", { href: "#/sign-in" }, "Start again"),
    );
  }, 3_000);
  channel.onmessage = (event: MessageEvent<{ taken?: string }>) => {
    if (event.data.taken !== back.state) return;
    clearTimeout(unclaimed);
    channel.close();
    status.textContent = "Done: you can close this window.";
    window.close();
  };
  channel.postMessage({ back });
}

/**
 * "Link …" on the account page: the provider in a pop-up, then the link on
 * this tab's session. Resolves once linked; `signal` gives up waiting.
 */
export async function linkWith(ctx: Ctx, provider: Provider, signal: AbortSignal): Promise<ExternalIdentity> {
  const started = await ctx.client.beginProviderLink(provider.id, redirectUri());
  const popup = window.open(started.authorizationUrl, "gatehouse-provider", "popup,width=520,height=680");
  if (!popup) throw new Error(`Allow pop-ups for this site to link ${provider.name}.`);
  const state = stateOf(started.authorizationUrl);
  const back = await waitForReturn(state, new Date(started.expiresAt), signal).finally(() => popup.close());
  if ("error" in back) {
    throw new Error(`${provider.name} did not link your account (${back.description ?? back.error}).`);
  }
  return ctx.client.linkProvider({ flow: started.flow, ...back });
}

/** What the pop-up sends back for `state`, until the flow expires or `signal` aborts. */
function waitForReturn(state: string, expiresAt: Date, signal: AbortSignal): Promise<ProviderReturn> {
  const channel = new BroadcastChannel(CHANNEL);
  return new Promise<ProviderReturn>((resolve, reject) => {
    const expired = setTimeout(
      () => reject(new Error("The provider did not answer in time: link it again.")),
      Math.max(expiresAt.getTime() - Date.now(), 0),
    );
    const stop = () => reject(new DOMException("Linking was cancelled.", "AbortError"));
    signal.addEventListener("abort", stop, { once: true });
    channel.onmessage = (event: MessageEvent<{ back?: ProviderReturn }>) => {
      const back = event.data.back;
      if (back?.state !== state) return;
      channel.postMessage({ taken: state });
      clearTimeout(expired);
      signal.removeEventListener("abort", stop);
      resolve(back);
    };
  }).finally(() => channel.close());
}
