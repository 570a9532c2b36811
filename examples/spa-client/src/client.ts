// A minimal SPA-side Gatehouse client: typed operations generated from
// schema.graphql, the token kept in memory, a refresh scheduled before
// `expiresAt` while the user is active, and sign-outs explained by reason.
import { print } from "graphql";
import { createClient } from "graphql-ws";
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import {
  AccountDocument,
  BeginPasskeyReauthenticationDocument,
  BeginPasskeyRegistrationDocument,
  BeginPasskeySecondFactorDocument,
  BeginPasskeySignInDocument,
  BeginPasskeySignUpDocument,
  BeginProviderLinkDocument,
  BeginProviderSignInDocument,
  BeginTotpEnrolmentDocument,
  ChangeEmailDocument,
  CompleteSignInDocument,
  ConfirmTotpEnrolmentDocument,
  ChangePasswordDocument,
  DeleteAccountDocument,
  DeletePasskeyDocument,
  ExternalIdentitiesDocument,
  FinishPasskeyRegistrationDocument,
  LinkProviderDocument,
  LoginDocument,
  LogoutDocument,
  MeDocument,
  ReauthenticateDocument,
  RefreshSessionDocument,
  RegisterDocument,
  RenamePasskeyDocument,
  RequestEmailSignInCodeDocument,
  RequestPasswordResetDocument,
  ResendVerificationEmailDocument,
  ResetPasswordDocument,
  RevokeOtherSessionsDocument,
  RevokeSessionDocument,
  SecondFactorDocument,
  SessionStatusDocument,
  SignInOptionsDocument,
  SignInWithEmailCodeDocument,
  SignInWithPasskeyDocument,
  SignInWithProviderDocument,
  SignUpWithPasskeyDocument,
  UnlinkProviderDocument,
  VerifyEmailDocument,
  type AccountQuery,
  type BeginProviderSignInMutation,
  type BeginTotpEnrolmentMutation,
  type ExternalIdentitiesQuery,
  type FinishPasskeyRegistrationMutation,
  type LinkProviderMutation,
  type RequestEmailSignInCodeMutation,
  type SignInOptionsQuery,
  type PasskeyAssertionInput,
  type ReauthenticateInput,
  type MeQuery,
  type SecondFactorQuery,
  type SessionStatusSubscription,
} from "./gql/graphql.js";

/** Every `extensions.reason` Gatehouse sends with UNAUTHENTICATED. */
export type SignOutReason =
  | "MISSING_TOKEN"
  | "INVALID_TOKEN"
  | "IDLE_TIMEOUT"
  | "ABSOLUTE_TIMEOUT"
  | "REVOKED"
  | "SESSION_LIMIT"
  | "PASSWORD_RESET"
  | "ACCOUNT_DISABLED";

/** Thrown when the server ends (or never had) the session. */
export class SignedOut extends Error {
  constructor(readonly reason: SignOutReason) {
    super(explain(reason));
  }
}

/** Thrown on RATE_LIMITED: wait `retryAfter` seconds before trying again. */
export class RateLimited extends Error {
  constructor(readonly retryAfter: number) {
    super(`Too many attempts. Try again in ${retryAfter} seconds.`);
  }
}

/**
 * Thrown on REAUTHENTICATION_REQUIRED when the user did not confirm their
 * password: the operation needs one proven more recently than `authenticatedAt`.
 */
export class ReauthenticationRequired extends Error {
  constructor(readonly authenticatedAt: string) {
    super("Please confirm your password to continue.");
  }
}

/** Any other GraphQL error, with its stable code. */
export class GatehouseError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Thrown on PASSWORD_TOO_WEAK by `register`, `changePassword` and
 * `resetPassword`: the new password is common, patterned or built from the
 * account's address. Show `advice` beside the password field and let the
 * user try another; nothing was changed.
 */
export class PasswordTooWeak extends GatehouseError {
  constructor(
    message: string,
    /** What makes it easy to guess, when zxcvbn can name it. */
    readonly warning: string | null,
    /** How to choose a better one; never empty. */
    readonly suggestions: string[],
    /** Its zxcvbn score (0 to 4), under the server's `minScore`. */
    readonly score: number,
    readonly minScore: number,
  ) {
    super("PASSWORD_TOO_WEAK", message);
  }

  /** The lines to show under the field: the warning, then each suggestion. */
  get advice(): string[] {
    return this.warning ? [this.warning, ...this.suggestions] : [...this.suggestions];
  }
}

/**
 * Thrown by `login` when the account has a second factor: the password was
 * right, but no session is open yet. Ask for a code from the user's app
 * (or, if `methods` lists it, a recovery code) and call `completeSignIn`
 * with `challenge` within 5 minutes.
 */
export class SecondFactorRequired extends GatehouseError {
  constructor(
    message: string,
    readonly challenge: string,
    readonly methods: SecondFactorMethod[],
    readonly expiresAt: string,
  ) {
    super("SECOND_FACTOR_REQUIRED", message);
  }
}

/**
 * Thrown by `finishProviderSignIn` on LINK_REQUIRED: an account here has
 * the address the provider gave, and the provider may not join it by
 * itself. Tell the user to sign in to that account another way (its
 * password, a passkey, an e-mail code) and link the provider from the
 * account page; nothing was made or changed.
 */
export class LinkRequired extends GatehouseError {
  constructor(message: string) {
    super("LINK_REQUIRED", message);
  }
}

/** A provider flow begun: send the browser to `authorizationUrl`, and keep `flow` until it returns. */
export type ProviderFlow = BeginProviderSignInMutation["beginProviderSignIn"];

/** An account at another provider, linked to this one. */
export type ExternalIdentity = LinkProviderMutation["linkProvider"];

/**
 * What the provider's redirect brought back to the redirect URI's page:
 * `code` and `state`, or the provider's `error` (e.g. `access_denied`).
 */
export type ProviderReturn =
  | { state: string; code: string; iss: string | null }
  | { state: string; error: string; description: string | null };

/** What `SECOND_FACTOR_REQUIRED` may offer. */
export type SecondFactorMethod = "TOTP" | "RECOVERY_CODE" | "PASSKEY";

/**
 * A proof for `completeSignIn`: a code from the authenticator app, a
 * recovery code, or a passkey's answer (`completeSignInWithPasskey` gets it).
 */
export type SecondFactorCode =
  | { totpCode: string }
  | { recoveryCode: string }
  | { passkey: PasskeyAssertionInput };

/** A ceremony from a `beginPasskey…` mutation. */
interface Ceremony {
  ceremony: string;
  /** `{ publicKey }` in WebAuthn's JSON form; sign-in adds `mediation`. */
  options: unknown;
}

/** What to tell the user when a session ends. */
export function explain(reason: SignOutReason): string {
  switch (reason) {
    case "IDLE_TIMEOUT":
      return "You were signed out after a period of inactivity.";
    case "ABSOLUTE_TIMEOUT":
      return "Your session reached its time limit. Please sign in again.";
    case "REVOKED":
      return "You were signed out, perhaps from another device.";
    case "SESSION_LIMIT":
      return "You were signed out because you signed in on too many devices.";
    case "PASSWORD_RESET":
      return "Your password was reset, so every session was signed out. Sign in with the new password.";
    case "ACCOUNT_DISABLED":
      return "This account has been disabled. Contact your administrator.";
    case "INVALID_TOKEN":
    case "MISSING_TOKEN":
      return "Please sign in.";
  }
}

interface GraphQLError {
  message: string;
  extensions?: {
    code?: string;
    reason?: SignOutReason;
    retryAfter?: number;
    authenticatedAt?: string;
    warning?: string | null;
    challenge?: string;
    methods?: SecondFactorMethod[];
    expiresAt?: string;
    suggestions?: string[];
    score?: number;
    minScore?: number;
  };
}

/** A session's two deadlines, as every operation here returns them. */
interface Deadlines {
  expiresAt: string;
  absoluteExpiresAt: string;
}

export interface ClientOptions {
  /** The Gatehouse endpoint, e.g. `https://id.example.com/graphql`. */
  endpoint: string;
  /** Called once whenever the server ends the session. */
  onSignedOut: (reason: SignOutReason) => void;
  /** Refresh this long before `expiresAt`, so a slow network never loses it. */
  refreshMarginMs?: number;
  /**
   * Send each document by its hash alone, for a server started with
   * GATEHOUSE_TRUSTED_DOCUMENTS=src/gql/persisted-documents.json.
   */
  trustedDocuments?: boolean;
  /**
   * The "confirm your password" step: asked when a sensitive operation
   * needs a recently proven password. Resolve to the password, or to null
   * if the user cancels.
   */
  confirmPassword?: () => Promise<string | null>;
  /**
   * The same step where more than a password may prove it (a code with it,
   * or a passkey): resolve to `reauthenticate`'s input, or null on cancel.
   * It wins over `confirmPassword`.
   */
  confirmIdentity?: () => Promise<ReauthenticateInput | null>;
  /**
   * Keep the session in Gatehouse's HttpOnly cookie instead of in memory
   * (GATEHOUSE_SESSION_COOKIE=true, and this app's origin in
   * GATEHOUSE_CORS_ORIGINS).
   */
  cookie?: boolean;
}

export class GatehouseClient {
  /**
   * The known-device token, in memory here; a real app keeps it in
   * localStorage so the browser stays known. In cookie mode the server
   * keeps it in its HttpOnly cookie instead, and this stays null.
   */
  knownDevice: string | null = null;

  private token: string | null = null;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  private lastActivity = Date.now();
  private readonly margin: number;

  constructor(private readonly options: ClientOptions) {
    this.margin = options.refreshMarginMs ?? 60_000;
  }

  /** Call on user input: only an active user's session is kept alive. */
  noteActivity(): void {
    this.lastActivity = Date.now();
  }

  /** Signs up and in; a weak password throws `PasswordTooWeak`. */
  async register(email: string, password: string): Promise<string> {
    const { register } = await this.request(RegisterDocument, { input: { email, password } });
    this.signedIn(register.token, register.session);
    return register.user.id;
  }

  /**
   * Signs in. On an account with a second factor this throws
   * `SecondFactorRequired`: finish with `completeSignIn`. A browser
   * remembered after an earlier second factor skips it.
   */
  async login(email: string, password: string, rememberMe = false): Promise<void> {
    const input = { email, password, rememberMe, knownDevice: this.knownDevice };
    const { login } = await this.request(LoginDocument, { input });
    this.keepDevice(login.knownDevice);
    this.signedIn(login.token, login.session);
  }

  /**
   * The second step: the challenge from `SecondFactorRequired` and a code.
   * With `rememberDevice`, this browser skips the code for the server's
   * GATEHOUSE_REMEMBER_DEVICE (30 days by default).
   */
  async completeSignIn(
    challenge: string,
    code: SecondFactorCode,
    rememberDevice = false,
  ): Promise<void> {
    const input = { challenge, ...code, rememberDevice, knownDevice: this.knownDevice };
    const { completeSignIn } = await this.request(CompleteSignInDocument, { input });
    this.keepDevice(completeSignIn.knownDevice);
    this.signedIn(completeSignIn.token, completeSignIn.session);
  }

  /**
   * Starts TOTP enrolment (needs a recent sign-in): show `qrCodeSvg` as it
   * is (`element.innerHTML = qrCodeSvg`), with `secret` for typing by hand.
   */
  async beginTotpEnrolment(): Promise<BeginTotpEnrolmentMutation["beginTotpEnrolment"]> {
    const { beginTotpEnrolment } = await this.sensitive(() =>
      this.request(BeginTotpEnrolmentDocument, {}),
    );
    return beginTotpEnrolment;
  }

  /** Turns the factor on with the app's current code; show the recovery codes once. */
  async confirmTotpEnrolment(code: string): Promise<string[]> {
    const { confirmTotpEnrolment } = await this.request(ConfirmTotpEnrolmentDocument, {
      input: { code },
    });
    return confirmTotpEnrolment.recoveryCodes;
  }

  /** The account's second factor, for the account page. */
  async secondFactor(): Promise<SecondFactorQuery["me"]["secondFactor"]> {
    const { me } = await this.request(SecondFactorDocument, {});
    return me.secondFactor;
  }

  async me(): Promise<MeQuery["me"]> {
    const { me } = await this.request(MeDocument, {});
    this.scheduleRefresh(me.session);
    return me;
  }

  /** Everything the account page shows, in one request. */
  async account(): Promise<AccountQuery["me"]> {
    const { me } = await this.request(AccountDocument, {});
    this.scheduleRefresh(me.session);
    return me;
  }

  /** Slides the idle window now; the timer calls this while the user is active. */
  async refresh(): Promise<Deadlines> {
    const { refreshSession } = await this.request(RefreshSessionDocument, {});
    this.scheduleRefresh(refreshSession.session);
    return refreshSession.session;
  }

  /** Signs out another of this account's sessions (from a device list). */
  async revokeSession(sessionId: string): Promise<void> {
    await this.sensitive(() => this.request(RevokeSessionDocument, { input: { sessionId } }));
  }

  /** Signs out every other session; returns how many there were. */
  async revokeOtherSessions(): Promise<number> {
    const { revokeOtherSessions } = await this.sensitive(() =>
      this.request(RevokeOtherSessionsDocument, {}),
    );
    return revokeOtherSessions;
  }

  /**
   * Replaces the password and signs out every other session; returns how
   * many. A weak new password throws `PasswordTooWeak` and changes nothing.
   */
  async changePassword(currentPassword: string, newPassword: string): Promise<number> {
    const { changePassword } = await this.request(ChangePasswordDocument, {
      input: { currentPassword, newPassword },
    });
    return changePassword.revokedSessions;
  }

  /** Deletes the account for good; every session of it ends. */
  async deleteAccount(password: string): Promise<void> {
    await this.sensitive(() => this.request(DeleteAccountDocument, { input: { password } }));
    this.forget();
  }

  /**
   * Runs a sensitive operation; if the server wants the password proven
   * again, asks the user once, proves it, and retries.
   */
  private async sensitive<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      if (!(error instanceof ReauthenticationRequired)) throw error;
      const input = await this.askIdentity();
      if (input === null) throw error;
      await this.request(ReauthenticateDocument, { input });
      return operation();
    }
  }

  private async askIdentity(): Promise<ReauthenticateInput | null> {
    const { confirmIdentity, confirmPassword } = this.options;
    if (confirmIdentity) return confirmIdentity();
    const password = confirmPassword ? await confirmPassword() : null;
    return password === null ? null : { password };
  }

  /**
   * The "forgot password" screen: sends a reset link if an account has the
   * address. The answer is the same either way, so say "if an account
   * exists, we sent a link".
   */
  async requestPasswordReset(email: string): Promise<void> {
    await this.request(RequestPasswordResetDocument, { input: { email } });
  }

  /**
   * The page the reset link opens: sets the new password with the link's
   * token. Every session of the account ends, this tab's too; sign in
   * again with the returned address. A weak password throws
   * `PasswordTooWeak`, and the link still works for a better one.
   */
  async resetPassword(token: string, newPassword: string): Promise<string> {
    const { resetPassword } = await this.request(ResetPasswordDocument, {
      input: { token, newPassword },
    });
    this.forget();
    return resetPassword.email;
  }

  /** The page the verification link opens; works signed in or not. */
  async verifyEmail(token: string): Promise<string> {
    const { verifyEmail } = await this.request(VerifyEmailDocument, { input: { token } });
    return verifyEmail.email;
  }

  /** "Send the link again"; false when the address is already verified. */
  async resendVerificationEmail(): Promise<boolean> {
    const { resendVerificationEmail } = await this.request(ResendVerificationEmailDocument, {});
    return resendVerificationEmail;
  }

  /** Sends a link to the new address; the account moves when it is used. */
  async changeEmail(password: string, newEmail: string): Promise<void> {
    await this.request(ChangeEmailDocument, { input: { password, newEmail } });
  }

  /** The token in a reset or verification link's `?token=`. */
  static tokenFrom(search: string): string | null {
    return new URLSearchParams(search).get("token");
  }

  /** What the sign-in page offers: the providers' buttons, and whether to offer an e-mail code. */
  async signInOptions(): Promise<SignInOptionsQuery["signInOptions"]> {
    const { signInOptions } = await this.request(SignInOptionsDocument, {});
    return signInOptions;
  }

  /**
   * Starts a sign-in (or sign-up) at `provider`. Keep `flow` in
   * `sessionStorage`: it is the PKCE verifier, so only this browser can
   * finish. Then send the browser to `authorizationUrl`; the provider
   * sends it back to `redirectUri` (exactly one of the server's
   * GATEHOUSE_OIDC_REDIRECT_URIS) with `?code=…&state=…`.
   */
  async beginProviderSignIn(provider: string, redirectUri: string): Promise<ProviderFlow> {
    const { beginProviderSignIn } = await this.request(BeginProviderSignInDocument, {
      input: { provider, redirectUri },
    });
    return beginProviderSignIn;
  }

  /**
   * Finishes it with the flow kept and the redirect's `code` and `state`
   * (`providerReturnFrom(location.search)`). Throws `SecondFactorRequired`
   * where the account has a factor, and `LinkRequired` where an account
   * has the provider's address but must link it itself.
   */
  async finishProviderSignIn(
    back: { flow: string; code: string; state: string; iss?: string | null },
    rememberMe = false,
  ): Promise<void> {
    const { flow, code, state, iss = null } = back;
    const input = { flow, code, state, iss, rememberMe };
    const { signInWithProvider } = await this.request(SignInWithProviderDocument, { input });
    this.keepDevice(signInWithProvider.knownDevice);
    this.signedIn(signInWithProvider.token, signInWithProvider.session);
  }

  /**
   * Starts linking an account at `provider` to this one (needs a recent
   * sign-in). Only this session can finish it, so the page that holds it
   * must still be there when the provider sends the browser back: open
   * `authorizationUrl` in a pop-up, not in this tab.
   */
  async beginProviderLink(provider: string, redirectUri: string): Promise<ProviderFlow> {
    const { beginProviderLink } = await this.sensitive(() =>
      this.request(BeginProviderLinkDocument, { input: { provider, redirectUri } }),
    );
    return beginProviderLink;
  }

  /** Finishes linking with the flow and what the provider sent back (needs a recent sign-in). */
  async linkProvider(back: {
    flow: string;
    code: string;
    state: string;
    iss?: string | null;
  }): Promise<ExternalIdentity> {
    const { flow, code, state, iss = null } = back;
    // Freshness is judged before the code is spent: a retry after
    // "confirm it's you" finishes the same flow.
    const { linkProvider } = await this.sensitive(() =>
      this.request(LinkProviderDocument, { input: { flow, code, state, iss } }),
    );
    return linkProvider;
  }

  /** Unlinks a provider (needs a recent sign-in); `LAST_SIGN_IN_METHOD` if it is the only way in. */
  async unlinkProvider(id: string): Promise<void> {
    await this.sensitive(() => this.request(UnlinkProviderDocument, { id }));
  }

  /** The providers linked to the account, oldest first (`account()` has them too). */
  async externalIdentities(): Promise<ExternalIdentitiesQuery["me"]["externalIdentities"]> {
    const { me } = await this.request(ExternalIdentitiesDocument, {});
    return me.externalIdentities;
  }

  /**
   * What a provider's redirect carried back, from the redirect URI page's
   * `location.search`; null when it carries none.
   */
  static providerReturnFrom(search: string): ProviderReturn | null {
    const params = new URLSearchParams(search);
    const state = params.get("state");
    const code = params.get("code");
    const error = params.get("error");
    if (state === null) return null;
    // RFC 9207: the server refuses a code whose `iss` is another issuer's.
    if (code !== null) return { state, code, iss: params.get("iss") };
    if (error !== null) return { state, error, description: params.get("error_description") };
    return null;
  }

  /**
   * Sends an 8-digit code to the address if an account has it. The answer
   * is the same either way, so say "if an account has this address, we
   * sent it a code". Keep `challenge` in memory: the code counts only with it.
   */
  async requestEmailSignInCode(
    email: string,
  ): Promise<RequestEmailSignInCodeMutation["requestEmailSignInCode"]> {
    const { requestEmailSignInCode } = await this.request(RequestEmailSignInCodeDocument, { email });
    return requestEmailSignInCode;
  }

  /**
   * Signs in with the code from the e-mail. Throws `SecondFactorRequired`
   * where the account has a factor, and `INVALID_EMAIL_CODE` (a
   * `GatehouseError`) for a wrong, used or expired code.
   */
  async signInWithEmailCode(challenge: string, code: string, rememberMe = false): Promise<void> {
    const input = { challenge, code, rememberMe };
    const { signInWithEmailCode } = await this.request(SignInWithEmailCodeDocument, { input });
    this.keepDevice(signInWithEmailCode.knownDevice);
    this.signedIn(signInWithEmailCode.token, signInWithEmailCode.session);
  }

  async logout(): Promise<void> {
    try {
      await this.request(LogoutDocument, {});
    } finally {
      this.forget();
    }
  }

  private keepDevice(token: string | null | undefined): void {
    if (token) this.knownDevice = token;
  }

  private signedIn(token: string, session: Deadlines): void {
    this.token = this.options.cookie ? null : token;
    this.scheduleRefresh(session);
  }

  /**
   * Refreshes `margin` before `expiresAt` if the user did something since.
   * Nothing extends a session past its absolute cap, so once `expiresAt`
   * is that cap there is nothing left to refresh.
   */
  private scheduleRefresh(session: Deadlines): void {
    clearTimeout(this.refreshTimer);
    const expiresAt = new Date(session.expiresAt).getTime();
    if (expiresAt >= new Date(session.absoluteExpiresAt).getTime()) return;
    const scheduledAt = Date.now();
    this.refreshTimer = setTimeout(
      () => {
        if (this.lastActivity < scheduledAt) return; // idle: let it expire
        // A failure has already reached onSignedOut, or will reach the
        // next request the user makes.
        this.refresh().catch(() => {});
      },
      Math.max(expiresAt - this.margin - Date.now(), 0),
    );
  }

  /**
   * Signs in with a passkey the browser holds for this site; no address is
   * typed. With `conditional`, the browser offers the passkeys in the
   * e-mail field's autofill (`autocomplete="username webauthn"`), and this
   * waits until the user picks one: start it when the page opens, and
   * abort it with `signal` when the page closes or a button starts a
   * modal one (a browser runs one request at a time).
   */
  async signInWithPasskey(
    options: { conditional?: boolean; signal?: AbortSignal; rememberMe?: boolean } = {},
  ): Promise<void> {
    const { beginPasskeySignIn } = await this.request(BeginPasskeySignInDocument, {});
    const mediation = options.conditional ? "conditional" : undefined;
    const answer = await getPasskey(beginPasskeySignIn, mediation, options.signal);
    const input = { ...answer, rememberMe: options.rememberMe ?? false };
    const { signInWithPasskey } = await this.request(SignInWithPasskeyDocument, { input });
    this.keepDevice(signInWithPasskey.knownDevice);
    this.signedIn(signInWithPasskey.token, signInWithPasskey.session);
  }

  /** Creates an account with a new passkey and no password, and signs it in. */
  async signUpWithPasskey(email: string, name?: string): Promise<string> {
    const { beginPasskeySignUp } = await this.request(BeginPasskeySignUpDocument, { email });
    const credential = await createPasskey(beginPasskeySignUp);
    const { signUpWithPasskey } = await this.request(SignUpWithPasskeyDocument, {
      input: { ceremony: beginPasskeySignUp.ceremony, credential, name },
    });
    this.keepDevice(signUpWithPasskey.knownDevice);
    this.signedIn(signUpWithPasskey.token, signUpWithPasskey.session);
    return signUpWithPasskey.user.id;
  }

  /** The second step with a passkey, when `SecondFactorRequired.methods` has `PASSKEY`. */
  async completeSignInWithPasskey(challenge: string, rememberDevice = false): Promise<void> {
    const { beginPasskeySecondFactor } = await this.request(BeginPasskeySecondFactorDocument, {
      challenge,
    });
    const passkey = await getPasskey(beginPasskeySecondFactor);
    await this.completeSignIn(challenge, { passkey }, rememberDevice);
  }

  /** Adds a passkey made by this browser to the account (needs a recent sign-in). */
  async addPasskey(
    name?: string,
  ): Promise<FinishPasskeyRegistrationMutation["finishPasskeyRegistration"]> {
    const { beginPasskeyRegistration } = await this.sensitive(() =>
      this.request(BeginPasskeyRegistrationDocument, {}),
    );
    const credential = await createPasskey(beginPasskeyRegistration);
    const { finishPasskeyRegistration } = await this.request(FinishPasskeyRegistrationDocument, {
      input: { ceremony: beginPasskeyRegistration.ceremony, credential, name },
    });
    return finishPasskeyRegistration;
  }

  async renamePasskey(id: string, name: string): Promise<void> {
    await this.request(RenamePasskeyDocument, { id, name });
  }

  /** Removes a passkey (needs a recent sign-in); `LAST_SIGN_IN_METHOD` if it is the only way in. */
  async deletePasskey(id: string): Promise<void> {
    await this.sensitive(() => this.request(DeletePasskeyDocument, { id }));
  }

  /**
   * A passkey's answer for `reauthenticate({ passkey })`, e.g. from
   * `confirmIdentity`: the "confirm it's you" step without the password.
   */
  async passkeyProof(): Promise<PasskeyAssertionInput> {
    const { beginPasskeyReauthentication } = await this.request(
      BeginPasskeyReauthenticationDocument,
      {},
    );
    return getPasskey(beginPasskeyReauthentication);
  }

  /**
   * Watches the session live over a WebSocket: `onWarning` is called before
   * it would end, with the seconds left and a `stay` action (the "stay
   * signed in" button) that records activity; when it ends, for any
   * reason, the client signs out at once. Returns a function that stops.
   */
  watch(options: {
    onWarning: (secondsLeft: number, stay: () => Promise<void>) => void;
    /** The session's state now, e.g. after a refresh: hide any warning. */
    onCurrent?: (expiresAt: string) => void;
    /** The WebSocket class, where there is no global one (Node). */
    webSocketImpl?: unknown;
  }): () => void {
    const hash = (SessionStatusDocument as { __meta__?: { hash?: string } }).__meta__?.hash;
    const client = createClient({
      url: this.options.endpoint.replace(/^http/, "ws"),
      webSocketImpl: options.webSocketImpl,
      connectionParams: () => (this.token ? { authorization: `Bearer ${this.token}` } : {}),
      retryAttempts: 5,
    });
    const payload = this.options.trustedDocuments
      ? { query: "", extensions: { persistedQuery: { version: 1, sha256Hash: hash } } }
      : { query: print(SessionStatusDocument) };
    const stop = client.subscribe<SessionStatusSubscription>(payload, {
      next: ({ data }) => {
        const status = data?.sessionStatus;
        if (status?.kind === "CURRENT") {
          options.onCurrent?.(status.expiresAt ?? "");
        } else if (status?.kind === "WARNING") {
          options.onWarning(status.secondsLeft ?? 0, async () => {
            await this.refresh();
          });
        } else if (status?.kind === "ENDED") {
          const reason = (status.reason ?? "INVALID_TOKEN") as SignOutReason;
          this.forget();
          this.options.onSignedOut(reason);
        }
      },
      error: () => {},
      complete: () => void client.dispose(),
    });
    return () => {
      stop();
      void client.dispose();
    };
  }

  /** Drops the token and the refresh timer, e.g. when the page unloads. */
  forget(): void {
    this.token = null;
    clearTimeout(this.refreshTimer);
  }

  private async request<Result, Variables>(
    document: TypedDocumentNode<Result, Variables>,
    variables: Variables,
  ): Promise<Result> {
    const headers: Record<string, string> = {
      accept: "application/graphql-response+json, application/json;q=0.9",
      "content-type": "application/json",
    };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    const hash = (document as { __meta__?: { hash?: string } }).__meta__?.hash;
    const body = this.options.trustedDocuments
      ? { documentId: hash, variables }
      : { query: print(document), variables };
    const response = await fetch(this.options.endpoint, {
      method: "POST",
      headers,
      credentials: this.options.cookie ? "include" : "same-origin",
      body: JSON.stringify(body),
    });
    const result = (await response.json()) as { data?: Result | null; errors?: GraphQLError[] };
    const error = result.errors?.[0];
    if (error?.extensions?.code === "UNAUTHENTICATED") {
      const reason = error.extensions.reason ?? "INVALID_TOKEN";
      this.forget();
      this.options.onSignedOut(reason);
      throw new SignedOut(reason);
    }
    if (error?.extensions?.code === "RATE_LIMITED") {
      throw new RateLimited(error.extensions.retryAfter ?? 60);
    }
    if (error?.extensions?.code === "REAUTHENTICATION_REQUIRED") {
      throw new ReauthenticationRequired(error.extensions.authenticatedAt ?? "");
    }
    if (error?.extensions?.code === "SECOND_FACTOR_REQUIRED") {
      const { challenge, methods, expiresAt } = error.extensions;
      throw new SecondFactorRequired(error.message, challenge ?? "", methods ?? ["TOTP"], expiresAt ?? "");
    }
    if (error?.extensions?.code === "LINK_REQUIRED") {
      throw new LinkRequired(error.message);
    }
    if (error?.extensions?.code === "PASSWORD_TOO_WEAK") {
      const { warning, suggestions, score, minScore } = error.extensions;
      throw new PasswordTooWeak(
        error.message,
        warning ?? null,
        suggestions ?? [],
        score ?? 0,
        minScore ?? 0,
      );
    }
    if (error || !result.data) {
      throw new GatehouseError(
        error?.extensions?.code ?? "UNKNOWN",
        error?.message ?? `Unexpected ${response.status} from Gatehouse`,
      );
    }
    return result.data;
  }
}

/**
 * Asks the browser for a passkey's assertion. Gatehouse sends the options
 * in WebAuthn's JSON form (binary as base64url), and takes `toJSON()` back.
 */
async function getPasskey(
  ceremony: Ceremony,
  mediation?: CredentialMediationRequirement,
  signal?: AbortSignal,
): Promise<PasskeyAssertionInput> {
  const { publicKey } = ceremony.options as { publicKey: PublicKeyCredentialRequestOptionsJSON };
  const credential = (await navigator.credentials.get({
    publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(publicKey),
    mediation,
    signal,
  })) as PublicKeyCredential | null;
  if (!credential) throw new DOMException("No passkey was chosen.", "NotAllowedError");
  return { ceremony: ceremony.ceremony, credential: credential.toJSON() };
}

/** Asks the browser to make a passkey; returns its `toJSON()`. */
async function createPasskey(ceremony: Ceremony): Promise<PublicKeyCredentialJSON> {
  const { publicKey } = ceremony.options as { publicKey: PublicKeyCredentialCreationOptionsJSON };
  const credential = (await navigator.credentials.create({
    publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(publicKey),
  })) as PublicKeyCredential | null;
  if (!credential) throw new DOMException("No passkey was made.", "NotAllowedError");
  return credential.toJSON();
}
