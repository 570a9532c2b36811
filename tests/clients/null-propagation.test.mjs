// Field errors against graphql-js, the reference implementation: the same
// documents run on the real binary and on graphql-js over the checked-in
// schema.graphql, with resolvers that fail on the same fields and otherwise
// return what the binary returned. The `data` (nulls included) and the
// errors' paths must be the same.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { buildSchema, graphql } from "graphql";
import { startGatehouse } from "./gatehouse.mjs";
import { PASSWORD, email } from "./support.mjs";

const schema = buildSchema(
  readFileSync(resolve(import.meta.dirname, "../../schema.graphql"), "utf8"),
);

/** Everything the documents below read when nothing fails. */
const EVERYTHING = `{ me {
  user { id email emailVerified createdAt }
  session { id current createdAt device { kind browser os } }
} }`;
const LISTS = `{ me {
  sessions { id current createdAt device { kind browser os } }
  securityEvents(first: 5) { edges { cursor node { id kind } } pageInfo { hasNextPage endCursor } }
} }`;

async function post(server, query, token) {
  const response = await fetch(server.url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/graphql-response+json",
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify({ query }),
  });
  return response.json();
}

async function register(server) {
  const body = await post(
    server,
    `mutation { register(input: { email: "${email("nulls")}", password: "${PASSWORD}" }) { token } }`,
  );
  assert.equal(body.errors, undefined, JSON.stringify(body));
  return body.data.register.token;
}

/** A resolver that fails as the binary's field does. */
const fails = (message) => () => {
  throw new Error(message);
};

/**
 * The root value graphql-js resolves from: the binary's own answers, with
 * `securityEvents` failing on a garbage cursor and the `failing` fields
 * failing always.
 */
function rootValue(me, failing = []) {
  if (!me) return { me: fails("Sign-in required") };
  const viewer = { ...me };
  const events = viewer.securityEvents;
  viewer.securityEvents = ({ after }) => {
    if (after === "garbage") throw new Error("after is not a cursor from this API");
    return events;
  };
  for (const field of failing) viewer[field] = fails(field);
  return { me: viewer };
}

/** `data` and the sorted error paths, as the spec says they must be. */
const outcome = (body) => ({
  data: body.data,
  paths: (body.errors ?? []).map((e) => JSON.stringify(e.path)).sort(),
});

async function assertSameAsGraphqlJs(server, token, root, query) {
  const ours = await post(server, query, token);
  assert.ok("data" in ours, `no data entry: ${JSON.stringify(ours)}`);
  const reference = await graphql({ schema, source: query, rootValue: root });
  // As JSON text: graphql-js's objects have no prototype, and the keys'
  // order (the selection's) must match too.
  const [got, want] = [ours, reference].map((body) => JSON.stringify(outcome(body)));
  assert.equal(got, want, query);
  return ours;
}

const GARBAGE = `securityEvents(first: 1, after: "garbage") { edges { cursor } }`;

/** Documents whose only failure is the garbage cursor. */
const CURSOR_DOCUMENTS = [
  `{ me { ${GARBAGE} } }`,
  `{ me { user { email } ${GARBAGE} } }`,
  // Lists that succeeded, beside the failure.
  `{ me { sessions { id current } user { email } ${GARBAGE} } }`,
  // Aliases.
  `{ mine: me { u: user { address: email } events: ${GARBAGE} } }`,
  // Fragments and inline fragments.
  `query { me { ...V } } fragment V on Viewer { user { email } ... on Viewer { ${GARBAGE} } }`,
  `query { me { ... { session { id } } ...E } } fragment E on Viewer { ev: ${GARBAGE} }`,
  // Nothing fails: the same data, no errors.
  `{ me { user { email emailVerified } sessions { id device { kind } } } }`,
  `{ a: me { user { id } } b: me { s: sessions { current } } }`,
];

describe("null propagation against graphql-js", () => {
  let server;
  let unverified;
  before(async () => {
    [server, unverified] = await Promise.all([
      startGatehouse(),
      startGatehouse({ GATEHOUSE_REQUIRE_VERIFIED_EMAIL: "true" }),
    ]);
  });
  after(() => Promise.all([server.stop(), unverified.stop()]));

  test("a failed non-null field nulls up to data, through aliases and fragments", async () => {
    const token = await register(server);
    const everything = await post(server, EVERYTHING, token);
    const lists = await post(server, LISTS, token);
    assert.equal(everything.errors ?? lists.errors, undefined, JSON.stringify([everything, lists]));
    const root = rootValue({ ...everything.data.me, ...lists.data.me });
    for (const query of CURSOR_DOCUMENTS) {
      await assertSameAsGraphqlJs(server, token, root, query);
    }
    const failed = await post(server, CURSOR_DOCUMENTS[1], token);
    assert.equal(failed.data, null, JSON.stringify(failed));
  });

  test("fields an unverified account may not read fail as graphql-js fails them", async () => {
    const token = await register(unverified);
    const everything = await post(unverified, EVERYTHING, token);
    assert.equal(everything.errors, undefined, JSON.stringify(everything));
    const root = rootValue(everything.data.me, ["sessions", "securityEvents"]);
    for (const query of [
      `{ me { user { email } sessions { id } } }`,
      `{ me { session { id } all: sessions { id device { kind } } } }`,
      `query { me { user { emailVerified } ...S } } fragment S on Viewer { sessions { current } }`,
      `{ me { user { email } session { current } } }`,
    ]) {
      await assertSameAsGraphqlJs(unverified, token, root, query);
    }
  });

  test("an anonymous me nulls data beside a root field that succeeded", async () => {
    for (const query of [`{ __typename me { user { email } } }`, `{ me { user { id } } }`]) {
      await assertSameAsGraphqlJs(server, null, rootValue(null), query);
    }
  });
});
