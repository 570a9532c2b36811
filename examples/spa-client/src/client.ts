// A minimal SPA-side Gatehouse client: typed operations generated from
// schema.graphql, the token kept in memory, a refresh scheduled before
// `expiresAt` while the user is active, and sign-outs explained by reason.
import { print } from "graphql";
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import {
  LoginDocument,
  LogoutDocument,
  MeDocument,
  RefreshSessionDocument,
  type MeQuery,
} from "./gql/graphql";

/** Every `extensions.reason` Gatehouse sends with UNAUTHENTICATED. */
export type SignOutReason =
  | "MISSING_TOKEN"
  | "INVALID_TOKEN"
  | "IDLE_TIMEOUT"
  | "ABSOLUTE_TIMEOUT"
  | "REVOKED";

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

/** What to tell the user when a session ends. */
export function explain(reason: SignOutReason): string {
  switch (reason) {
    case "IDLE_TIMEOUT":
      return "You were signed out after a period of inactivity.";
    case "ABSOLUTE_TIMEOUT":
      return "Your session reached its time limit. Please sign in again.";
    case "REVOKED":
      return "You were signed out, perhaps from another device.";
    case "INVALID_TOKEN":
    case "MISSING_TOKEN":
      return "Please sign in.";
  }
}

interface GraphQLError {
  message: string;
  extensions?: { code?: string; reason?: SignOutReason; retryAfter?: number };
}

/** Refresh this long before `expiresAt`, so a slow network never loses it. */
const REFRESH_MARGIN_MS = 60_000;

export class GatehouseClient {
  private token: string | null = null;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  private lastActivity = Date.now();

  constructor(
    private readonly endpoint: string,
    private readonly onSignedOut: (reason: SignOutReason) => void,
  ) {}

  /** Call on user input: only an active user's session is kept alive. */
  noteActivity(): void {
    this.lastActivity = Date.now();
  }

  async login(email: string, password: string): Promise<void> {
    const { login } = await this.request(LoginDocument, { input: { email, password } });
    this.token = login.token;
    this.scheduleRefresh(login.session.expiresAt);
  }

  async me(): Promise<MeQuery["me"]> {
    const { me } = await this.request(MeDocument, {});
    this.scheduleRefresh(me.session.expiresAt);
    return me;
  }

  async logout(): Promise<void> {
    try {
      await this.request(LogoutDocument, {});
    } finally {
      this.forget();
    }
  }

  /** Slides the idle window if the user did something since the last request. */
  private scheduleRefresh(expiresAt: string): void {
    clearTimeout(this.refreshTimer);
    const due = new Date(expiresAt).getTime() - REFRESH_MARGIN_MS - Date.now();
    const requestedAt = Date.now();
    this.refreshTimer = setTimeout(async () => {
      if (this.lastActivity < requestedAt) return; // idle: let it expire
      const { refreshSession } = await this.request(RefreshSessionDocument, {});
      this.scheduleRefresh(refreshSession.expiresAt);
    }, Math.max(due, 0));
  }

  private forget(): void {
    this.token = null;
    clearTimeout(this.refreshTimer);
  }

  private async request<Result, Variables>(
    document: TypedDocumentNode<Result, Variables>,
    variables: Variables,
  ): Promise<Result> {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    const response = await fetch(this.endpoint, {
      method: "POST",
      headers,
      body: JSON.stringify({ query: print(document), variables }),
    });
    const body = (await response.json()) as { data?: Result | null; errors?: GraphQLError[] };
    const error = body.errors?.[0];
    if (error?.extensions?.code === "UNAUTHENTICATED") {
      const reason = error.extensions.reason ?? "INVALID_TOKEN";
      this.forget();
      this.onSignedOut(reason);
      throw new SignedOut(reason);
    }
    if (error?.extensions?.code === "RATE_LIMITED") {
      throw new RateLimited(error.extensions.retryAfter ?? 60);
    }
    if (error || !body.data) {
      throw new Error(error?.message ?? `Unexpected ${response.status} from Gatehouse`);
    }
    return body.data;
  }
}
