// Apollo Client 4 against the real binary, with its default settings plus
// only the auth setup the README gives.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { SetContextLink } from "@apollo/client/link/context";
import { ErrorLink } from "@apollo/client/link/error";
import { PersistedQueryLink } from "@apollo/client/link/persisted-queries";
import { CombinedGraphQLErrors } from "@apollo/client/errors";
import { startGatehouse } from "./gatehouse.mjs";
import {
  MANIFEST,
  PASSWORD,
  browserFetch,
  documents,
  email,
  recordingFetch,
  sha256,
  sleep,
} from "./support.mjs";

const { RegisterDocument, LoginDocument, MeDocument, RefreshSessionDocument } = documents;
const { RevokeSessionDocument, LogoutDocument } = documents;

/** The README's setup: a bearer token from memory, one error link for sign-outs. */
function apolloClient(url, { fetch, links = [], http = {} } = {}) {
  const session = { token: null, signOuts: [] };
  const auth = new SetContextLink((prev) => ({
    headers: { ...prev.headers, ...(session.token && { authorization: `Bearer ${session.token}` }) },
  }));
  const signOut = new ErrorLink(({ error }) => {
    if (!CombinedGraphQLErrors.is(error)) return;
    const unauthenticated = error.errors.find((e) => e.extensions?.code === "UNAUTHENTICATED");
    if (unauthenticated) {
      session.token = null;
      session.signOuts.push(unauthenticated.extensions.reason);
    }
  });
  const client = new ApolloClient({
    cache: new InMemoryCache(),
    link: ApolloLink.from([signOut, auth, ...links, new HttpLink({ uri: url, fetch, ...http })]),
  });
  return { client, session };
}

const me = (client) => client.query({ query: MeDocument, fetchPolicy: "network-only" });

/** The error a rejected operation carries, as a list of codes and reasons. */
async function refusal(promise) {
  const error = await promise.then(
    () => assert.fail("the operation succeeded"),
    (e) => e,
  );
  assert.ok(CombinedGraphQLErrors.is(error), `not a GraphQL error: ${error}`);
  return error.errors.map((e) => e.extensions?.reason ?? e.extensions?.code);
}

describe("Apollo Client 4", () => {
  let server;
  before(async () => {
    server = await startGatehouse();
  });
  after(() => server.stop());

  test("signs up, signs in, refreshes, revokes and signs out; one error link sees each sign-out", async () => {
    const address = email("apollo");
    const laptop = apolloClient(server.url);
    const { data: signedUp } = await laptop.client.mutate({
      mutation: RegisterDocument,
      variables: { input: { email: address, password: PASSWORD } },
    });
    laptop.session.token = signedUp.register.token;

    const phone = apolloClient(server.url);
    const { data: signedIn } = await phone.client.mutate({
      mutation: LoginDocument,
      variables: { input: { email: address, password: PASSWORD } },
    });
    phone.session.token = signedIn.login.token;

    const { data } = await me(laptop.client);
    assert.equal(data.me.user.email, address);
    assert.equal(data.me.sessions.length, 2);
    const { data: refreshed } = await laptop.client.mutate({ mutation: RefreshSessionDocument });
    assert.ok(Date.parse(refreshed.refreshSession.session.expiresAt) > Date.now());

    await laptop.client.mutate({
      mutation: RevokeSessionDocument,
      variables: { input: { sessionId: signedIn.login.session.id } },
    });
    assert.deepEqual(await refusal(me(phone.client)), ["REVOKED"]);
    assert.deepEqual(phone.session.signOuts, ["REVOKED"]);

    const { data: loggedOut } = await laptop.client.mutate({ mutation: LogoutDocument });
    assert.equal(loggedOut.logout, true);
    // An app that kept the token after logout learns it is dead, once.
    assert.deepEqual(await refusal(me(laptop.client)), ["REVOKED"]);
    assert.deepEqual(await refusal(me(laptop.client)), ["MISSING_TOKEN"]);

    const forged = apolloClient(server.url);
    forged.session.token = "gth_not-a-real-token";
    assert.deepEqual(await refusal(me(forged.client)), ["INVALID_TOKEN"]);
    assert.deepEqual(forged.session.signOuts, ["INVALID_TOKEN"]);
  });

  test("sends queries over GET when asked to", async () => {
    const recorder = recordingFetch();
    const { client, session } = apolloClient(server.url, {
      fetch: recorder.fetch,
      http: { useGETForQueries: true },
    });
    const { data: signedUp } = await client.mutate({
      mutation: RegisterDocument,
      variables: { input: { email: email("apollo-get"), password: PASSWORD } },
    });
    session.token = signedUp.register.token;
    const { data } = await me(client);
    assert.equal(data.me.session.id, signedUp.register.session.id);
    assert.deepEqual(
      recorder.requests.map((r) => r.method),
      ["POST", "GET"],
    );
  });

  test("automatic persisted queries: one miss, then the hash alone", async () => {
    // Apollo answers a lone `__typename` itself; this goes to the server.
    const query = gql`
      query QueryType {
        __schema {
          queryType {
            name
          }
        }
      }
    `;
    const run = async () => {
      const recorder = recordingFetch();
      const persisted = new PersistedQueryLink({ sha256 });
      const { client } = apolloClient(server.url, { fetch: recorder.fetch, links: [persisted] });
      const { data } = await client.query({ query });
      assert.equal(data.__schema.queryType.name, "Query");
      return recorder.requests.map((r) => "query" in JSON.parse(r.body));
    };
    // The first client registers the text after a miss; the next one needs
    // only the hash.
    assert.deepEqual(await run(), [false, true]);
    assert.deepEqual(await run(), [false]);
  });

  test("IDLE_TIMEOUT reaches the error link", async () => {
    const idle = await startGatehouse({ GATEHOUSE_IDLE_TIMEOUT: "2s" });
    try {
      const { client, session } = apolloClient(idle.url);
      const { data } = await client.mutate({
        mutation: RegisterDocument,
        variables: { input: { email: email("apollo-idle"), password: PASSWORD } },
      });
      session.token = data.register.token;
      await me(client);
      await sleep(2_500);
      assert.deepEqual(await refusal(me(client)), ["IDLE_TIMEOUT"]);
      assert.deepEqual(session.signOuts, ["IDLE_TIMEOUT"]);
    } finally {
      await idle.stop();
    }
  });

  test("the cookie transport, from an allowed origin", async () => {
    const origin = "http://localhost:5173";
    const cookies = await startGatehouse({
      GATEHOUSE_SESSION_COOKIE: "true",
      GATEHOUSE_COOKIE_SECURE: "false",
      GATEHOUSE_CORS_ORIGINS: origin,
    });
    try {
      const page = browserFetch(origin);
      // The README's cookie setup: credentials, and no token in scripts.
      const { client } = apolloClient(cookies.url, {
        fetch: page.fetch,
        http: { credentials: "include" },
      });
      const address = email("apollo-cookie");
      await client.mutate({
        mutation: RegisterDocument,
        variables: { input: { email: address, password: PASSWORD } },
      });
      assert.ok(page.jar.has("gatehouse_session"), "the session cookie was set");
      const { data } = await me(client);
      assert.equal(data.me.user.email, address);
      await client.mutate({ mutation: LogoutDocument });
      assert.ok(!page.jar.has("gatehouse_session"), "logout cleared the cookie");
      assert.deepEqual(await refusal(me(client)), ["MISSING_TOKEN"]);

      // A page on any other origin cannot read a thing.
      const stranger = apolloClient(cookies.url, {
        fetch: browserFetch("https://evil.example").fetch,
        http: { credentials: "include" },
      });
      await assert.rejects(me(stranger.client), /CORS/);
    } finally {
      await cookies.stop();
    }
  });

  test("trusted documents: the example's manifest runs by hash, nothing else runs", async () => {
    const trusted = await startGatehouse({ GATEHOUSE_TRUSTED_DOCUMENTS: MANIFEST });
    try {
      const recorder = recordingFetch();
      // Send codegen's hash instead of the text, and never fall back to it.
      const persisted = new PersistedQueryLink({
        generateHash: (document) => document.__meta__.hash,
        retry: () => false,
      });
      const { client, session } = apolloClient(trusted.url, {
        fetch: recorder.fetch,
        links: [persisted],
      });
      const address = email("apollo-trusted");
      const { data } = await client.mutate({
        mutation: RegisterDocument,
        variables: { input: { email: address, password: PASSWORD } },
      });
      session.token = data.register.token;
      const { data: mine } = await me(client);
      assert.equal(mine.me.user.email, address);
      assert.ok(
        recorder.requests.every((r) => !("query" in JSON.parse(r.body))),
        "only hashes were sent",
      );

      const plain = apolloClient(trusted.url);
      plain.session.token = session.token;
      const other = gql`
        query Mine {
          me {
            user {
              email
            }
          }
        }
      `;
      assert.deepEqual(
        await refusal(plain.client.query({ query: other })),
        ["DOCUMENT_NOT_TRUSTED"],
      );
    } finally {
      await trusted.stop();
    }
  });
});
