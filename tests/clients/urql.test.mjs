// urql 6 against the real binary, with its default settings (queries over
// GET when the URL is short enough) plus only the auth setup the README gives.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Client, cacheExchange, fetchExchange, gql, mapExchange } from "@urql/core";
import { persistedExchange } from "@urql/exchange-persisted";
import { startGatehouse } from "./gatehouse.mjs";
import { MANIFEST, PASSWORD, browserFetch, documents, email, recordingFetch, sleep } from "./support.mjs";

const { RegisterDocument, LoginDocument, MeDocument, RefreshSessionDocument } = documents;
const { RevokeSessionDocument, LogoutDocument } = documents;

/** The README's setup: a bearer token from memory, one exchange for sign-outs. */
function urqlClient(url, { fetch, exchanges = [], fetchOptions } = {}) {
  const session = { token: null, signOuts: [] };
  const signOut = mapExchange({
    onError(error) {
      const unauthenticated = error.graphQLErrors.find(
        (e) => e.extensions?.code === "UNAUTHENTICATED",
      );
      if (unauthenticated) {
        session.token = null;
        session.signOuts.push(unauthenticated.extensions.reason);
      }
    },
  });
  const client = new Client({
    url,
    fetch,
    exchanges: [cacheExchange, signOut, ...exchanges, fetchExchange],
    fetchOptions:
      fetchOptions ??
      (() => ({ headers: session.token ? { authorization: `Bearer ${session.token}` } : {} })),
  });
  return { client, session };
}

const me = (client) => client.query(MeDocument, {}, { requestPolicy: "network-only" }).toPromise();

function ok(result) {
  assert.equal(result.error, undefined, `${result.error}`);
  return result.data;
}

function refusal(result) {
  assert.ok(result.error, "the operation succeeded");
  assert.equal(result.error.networkError, undefined, `${result.error.networkError}`);
  return result.error.graphQLErrors.map((e) => e.extensions?.reason ?? e.extensions?.code);
}

describe("urql 6", () => {
  let server;
  before(async () => {
    server = await startGatehouse();
  });
  after(() => server.stop());

  test("signs up, signs in, refreshes, revokes and signs out; queries go over GET", async () => {
    const address = email("urql");
    const recorder = recordingFetch();
    const laptop = urqlClient(server.url, { fetch: recorder.fetch });
    const signedUp = ok(
      await laptop.client
        .mutation(RegisterDocument, { input: { email: address, password: PASSWORD } })
        .toPromise(),
    );
    laptop.session.token = signedUp.register.token;

    const phone = urqlClient(server.url);
    const signedIn = ok(
      await phone.client
        .mutation(LoginDocument, { input: { email: address, password: PASSWORD } })
        .toPromise(),
    );
    phone.session.token = signedIn.login.token;

    const mine = ok(await me(laptop.client));
    assert.equal(mine.me.user.email, address);
    assert.equal(mine.me.sessions.length, 2);
    const refreshed = ok(await laptop.client.mutation(RefreshSessionDocument, {}).toPromise());
    assert.ok(Date.parse(refreshed.refreshSession.session.expiresAt) > Date.now());
    // urql's default: the query went as a GET, the mutations as POSTs.
    assert.deepEqual(
      recorder.requests.map((r) => r.method),
      ["POST", "GET", "POST"],
    );

    ok(
      await laptop.client
        .mutation(RevokeSessionDocument, { input: { sessionId: signedIn.login.session.id } })
        .toPromise(),
    );
    assert.deepEqual(refusal(await me(phone.client)), ["REVOKED"]);
    assert.deepEqual(phone.session.signOuts, ["REVOKED"]);

    assert.equal(ok(await laptop.client.mutation(LogoutDocument, {}).toPromise()).logout, true);
    assert.deepEqual(refusal(await me(laptop.client)), ["REVOKED"]);
    assert.deepEqual(refusal(await me(laptop.client)), ["MISSING_TOKEN"]);

    const forged = urqlClient(server.url);
    forged.session.token = "gth_not-a-real-token";
    assert.deepEqual(refusal(await me(forged.client)), ["INVALID_TOKEN"]);
    assert.deepEqual(forged.session.signOuts, ["INVALID_TOKEN"]);
  });

  test("automatic persisted queries: one miss, then the hash alone", async () => {
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
      const { client } = urqlClient(server.url, {
        fetch: recorder.fetch,
        exchanges: [persistedExchange()],
      });
      const data = ok(await client.query(query, {}).toPromise());
      assert.equal(data.__schema.queryType.name, "Query");
      return recorder.requests.map((r) => new URL(r.url).searchParams.has("query") || /"query"/.test(r.body ?? ""));
    };
    assert.deepEqual(await run(), [false, true]);
    assert.deepEqual(await run(), [false]);
  });

  test("IDLE_TIMEOUT reaches the error exchange", async () => {
    const idle = await startGatehouse({ GATEHOUSE_IDLE_TIMEOUT: "2s" });
    try {
      const { client, session } = urqlClient(idle.url);
      const data = ok(
        await client
          .mutation(RegisterDocument, { input: { email: email("urql-idle"), password: PASSWORD } })
          .toPromise(),
      );
      session.token = data.register.token;
      ok(await me(client));
      await sleep(2_500);
      assert.deepEqual(refusal(await me(client)), ["IDLE_TIMEOUT"]);
      assert.deepEqual(session.signOuts, ["IDLE_TIMEOUT"]);
    } finally {
      await idle.stop();
    }
  });

  test("the cookie transport, from an allowed origin, with GET queries", async () => {
    const origin = "http://localhost:5173";
    const cookies = await startGatehouse({
      GATEHOUSE_SESSION_COOKIE: "true",
      GATEHOUSE_COOKIE_SECURE: "false",
      GATEHOUSE_CORS_ORIGINS: origin,
    });
    try {
      const page = browserFetch(origin);
      // The README's cookie setup for urql: credentials, and the header
      // that makes its GET queries need a CORS preflight.
      const { client } = urqlClient(cookies.url, {
        fetch: page.fetch,
        fetchOptions: { credentials: "include", headers: { "gatehouse-preflight": "1" } },
      });
      const address = email("urql-cookie");
      ok(
        await client
          .mutation(RegisterDocument, { input: { email: address, password: PASSWORD } })
          .toPromise(),
      );
      assert.ok(page.jar.has("gatehouse_session"), "the session cookie was set");
      assert.equal(ok(await me(client)).me.user.email, address);
      assert.equal(page.requests.at(-1).method, "GET");

      // Without the header, a GET is what any page could send: refused.
      const bare = urqlClient(cookies.url, {
        fetch: page.fetch,
        fetchOptions: { credentials: "include" },
      });
      assert.deepEqual(refusal(await me(bare.client)), ["PREFLIGHT_REQUIRED"]);

      ok(await client.mutation(LogoutDocument, {}).toPromise());
      assert.ok(!page.jar.has("gatehouse_session"), "logout cleared the cookie");
    } finally {
      await cookies.stop();
    }
  });

  test("trusted documents: the example's manifest runs by hash, nothing else runs", async () => {
    const trusted = await startGatehouse({ GATEHOUSE_TRUSTED_DOCUMENTS: MANIFEST });
    try {
      const recorder = recordingFetch();
      const { client, session } = urqlClient(trusted.url, {
        fetch: recorder.fetch,
        exchanges: [
          persistedExchange({
            enforcePersistedQueries: true,
            enableForMutation: true,
            generateHash: async (_, document) => document.__meta__.hash,
          }),
        ],
      });
      const address = email("urql-trusted");
      const data = ok(
        await client
          .mutation(RegisterDocument, { input: { email: address, password: PASSWORD } })
          .toPromise(),
      );
      session.token = data.register.token;
      assert.equal(ok(await me(client)).me.user.email, address);
      for (const request of recorder.requests) {
        const sentText = new URL(request.url).searchParams.has("query") || /"query"/.test(request.body ?? "");
        assert.ok(!sentText, "only hashes were sent");
      }

      const plain = urqlClient(trusted.url);
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
      assert.deepEqual(refusal(await plain.client.query(other, {}).toPromise()), [
        "DOCUMENT_NOT_TRUSTED",
      ]);
    } finally {
      await trusted.stop();
    }
  });
});
