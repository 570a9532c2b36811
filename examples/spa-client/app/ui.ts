// What every page shares: the app context, a tiny element builder that
// only ever sets text (never HTML), and one way to run a button's action.
import {
  GatehouseError,
  PasswordTooWeak,
  ReauthenticationRequired,
  type GatehouseClient,
  type ProviderReturn,
  type SecondFactorRequired,
} from "../src/client.js";
import type { AccountQuery, SignInOptionsQuery } from "../src/gql/graphql.js";

/** The app as the pages see it. */
export interface Ctx {
  client: GatehouseClient;
  /** Goes to a hash route, e.g. `#/account`. */
  go(route: string): void;
  /** Shows a line at the top of the page; `code` is the error's stable code. */
  notice(text: string, kind?: "info" | "error", code?: string): void;
  /** After any sign-in: remembers the browser, watches the session, opens the account. */
  signedIn(): void;
  /** The sign-in waiting for its second factor. */
  challenge: SecondFactorRequired | null;
  /** The account as last loaded, for the confirm-it's-you dialog. */
  account: AccountQuery["me"] | null;
  /** The server's providers and whether it sends sign-in codes, loaded once. */
  signInOptions(): Promise<SignInOptionsQuery["signInOptions"]>;
  /** What a provider sent this page back with, for the callback page. */
  providerReturn: ProviderReturn | null;
}

/** A page: its element, and what to stop when the user leaves it. */
export interface Page {
  element: HTMLElement;
  leave?: () => void;
}

type Child = Node | string | null | undefined | false;
type Attrs = Record<string, string | boolean | undefined | ((event: Event) => void)>;

/** `h("button", { id: "x", onclick }, "Text")`: attributes, listeners and text children. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (typeof value === "function") element.addEventListener(name.replace(/^on/, ""), value);
    else if (value === true) element.setAttribute(name, "");
    else if (typeof value === "string") element.setAttribute(name, value);
  }
  for (const child of children) if (child) element.append(child);
  return element;
}

/** A date as the user's locale writes it. */
export const when = (iso: string | null | undefined): string =>
  iso ? new Date(iso).toLocaleString() : "never";

/** How a method of proof reads in a sentence. */
export const methods = (list: readonly string[]): string =>
  list.map((m) => METHODS[m] ?? words(m).toLowerCase()).join(" + ");
const METHODS: Record<string, string> = {
  PASSWORD: "password",
  TOTP: "authenticator app",
  RECOVERY_CODE: "recovery code",
  REMEMBERED_DEVICE: "remembered browser",
  PASSKEY: "passkey",
  PROVIDER: "provider",
  EMAIL_CODE: "e-mail code",
};

/** `SIGNED_IN` → "Signed in". */
export const words = (constant: string): string =>
  constant.charAt(0) + constant.slice(1).toLowerCase().replace(/_/g, " ");

/**
 * Runs a button's action: the button is disabled meanwhile (so a double
 * click does not start two ceremonies), and any failure is shown.
 */
export async function action(ctx: Ctx, button: HTMLButtonElement, run: () => Promise<void>) {
  button.disabled = true;
  ctx.notice("");
  try {
    await run();
  } catch (error) {
    showError(ctx, error);
  } finally {
    button.disabled = false;
  }
}

export function showError(ctx: Ctx, error: unknown): void {
  if (error instanceof PasswordTooWeak) {
    ctx.notice([error.message, ...error.advice].join(" "), "error", error.code);
  } else if (error instanceof ReauthenticationRequired) {
    // Cancelled, or nothing to confirm with: an account with only
    // providers or e-mail codes proves itself by signing in again.
    const account = ctx.account;
    const text =
      account && !account.hasPassword && !account.passkeys.length
        ? "This needs a recent sign-in: sign out, sign in again, then try again."
        : error.message;
    ctx.notice(text, "error", "REAUTHENTICATION_REQUIRED");
  } else if (error instanceof GatehouseError) {
    ctx.notice(error.message, "error", error.code);
  } else if (error instanceof DOMException && error.name === "NotAllowedError") {
    // What the browser says when the user closes the passkey prompt or it times out.
    ctx.notice("The passkey request was cancelled or timed out.", "error", "NOT_ALLOWED");
  } else if (error instanceof DOMException && error.name === "AbortError") {
    // We aborted it ourselves (left the page, or a button took over).
  } else {
    ctx.notice(error instanceof Error ? error.message : String(error), "error");
  }
}

/** Submitting a form runs its action instead of loading a page. */
export function onSubmit(ctx: Ctx, form: HTMLFormElement, run: () => Promise<void>): void {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const button = form.querySelector<HTMLButtonElement>("button[type=submit]");
    if (button) void action(ctx, button, run);
  });
}
