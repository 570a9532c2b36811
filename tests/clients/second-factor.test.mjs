// The second factor from Apollo Client 4 and urql 6, as the README's
// Second factor section shows it, against the real binary. The codes come
// from otpauth (npm), an authenticator implementation nobody here wrote,
// reading the secret and the otpauth:// URI the API hands out.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { SetContextLink } from "@apollo/client/link/context";
import { CombinedGraphQLErrors } from "@apollo/client/errors";
import { Client, fetchExchange } from "@urql/core";
import * as OTPAuth from "otpauth";
import { startGatehouse } from "./gatehouse.mjs";
import { PASSWORD, email } from "./support.mjs";

const REGISTER = gql`mutation Register($input: RegisterInput!) { register(input: $input) { token } }`;
const LOGIN = gql`mutation Login($input: LoginInput!) {
  login(input: $input) { token knownDevice session { methods assuranceLevel } } }`;
const BEGIN = gql`mutation Begin { beginTotpEnrolment { secret uri qrCodeSvg } }`;
const CONFIRM = gql`mutation Confirm($input: ConfirmTotpEnrolmentInput!) {
  confirmTotpEnrolment(input: $input) { recoveryCodes session { assuranceLevel } } }`;
const COMPLETE = gql`mutation Complete($input: CompleteSignInInput!) {
  completeSignIn(input: $input) { token knownDevice session { methods assuranceLevel } } }`;

function apollo(url) {
  const session = { token: null };
  const auth = new SetContextLink((prev) => ({
    headers: { ...prev.headers, ...(session.token && { authorization: `Bearer ${session.token}` }) },
  }));
  const client = new ApolloClient({
    cache: new InMemoryCache(),
    link: ApolloLink.from([auth, new HttpLink({ uri: url })]),
  });
  return { client, session };
}

/** An account with TOTP on, enrolled by an app that scanned the URI. */
async function enrolled(url) {
  const { client, session } = apollo(url);
  const address = email("totp");
  const { data } = await client.mutate({ mutation: REGISTER, variables: { input: { email: address, password: PASSWORD } } });
  session.token = data.register.token;
  const begun = (await client.mutate({ mutation: BEGIN })).data.beginTotpEnrolment;
  assert.match(begun.qrCodeSvg, /<svg/);
  // The app reads the URI, not our secret field: they must agree.
  const app = OTPAuth.URI.parse(begun.uri);
  assert.equal(app.issuer, "Gatehouse");
  assert.equal(app.label, address);
  assert.equal(app.secret.base32, begun.secret);
  assert.equal(app.algorithm, "SHA1");
  assert.equal(app.digits, 6);
  assert.equal(app.period, 30);
  const confirmed = await client.mutate({
    mutation: CONFIRM,
    variables: { input: { code: app.generate() } },
  });
  const { recoveryCodes, session: now } = confirmed.data.confirmTotpEnrolment;
  assert.equal(now.assuranceLevel, "AAL2");
  assert.equal(recoveryCodes.length, 10);
  return { address, app, recoveryCodes };
}

describe("the second factor from real clients", () => {
  let server;
  before(async () => {
    server = await startGatehouse();
  });
  after(() => server.stop());

  test("Apollo: a password gets a challenge, the app's next code opens the session", async () => {
    const { address, app } = await enrolled(server.url);
    const { client } = apollo(server.url);
    let challenge;
    try {
      await client.mutate({ mutation: LOGIN, variables: { input: { email: address, password: PASSWORD } } });
      assert.fail("a password alone signed in");
    } catch (e) {
      assert.ok(CombinedGraphQLErrors.is(e), String(e));
      const ext = e.errors[0].extensions;
      assert.equal(ext.code, "SECOND_FACTOR_REQUIRED");
      assert.deepEqual(ext.methods, ["TOTP", "RECOVERY_CODE"]);
      challenge = ext.challenge;
    }
    // The enrolment spent this step's code; the app's next one is within skew.
    const totpCode = app.generate({ timestamp: Date.now() + 30_000 });
    const { data } = await client.mutate({
      mutation: COMPLETE,
      variables: { input: { challenge, totpCode, rememberDevice: true } },
    });
    assert.deepEqual(data.completeSignIn.session.methods, ["PASSWORD", "TOTP"]);
    assert.equal(data.completeSignIn.session.assuranceLevel, "AAL2");
    // "Remember this browser": the next sign-in with its device token skips the code.
    const again = await client.mutate({
      mutation: LOGIN,
      variables: { input: { email: address, password: PASSWORD, knownDevice: data.completeSignIn.knownDevice } },
    });
    assert.deepEqual(again.data.login.session.methods, ["PASSWORD", "REMEMBERED_DEVICE"]);
  });

  test("urql: the challenge arrives in graphQLErrors, and a recovery code answers it", async () => {
    const { address, recoveryCodes } = await enrolled(server.url);
    const client = new Client({ url: server.url, exchanges: [fetchExchange] });
    const login = await client
      .mutation(LOGIN, { input: { email: address, password: PASSWORD } })
      .toPromise();
    const ext = login.error.graphQLErrors[0].extensions;
    assert.equal(ext.code, "SECOND_FACTOR_REQUIRED");
    const done = await client
      .mutation(COMPLETE, { input: { challenge: ext.challenge, recoveryCode: recoveryCodes[0] } })
      .toPromise();
    assert.equal(done.error, undefined, String(done.error));
    assert.deepEqual(done.data.completeSignIn.session.methods, ["PASSWORD", "RECOVERY_CODE"]);
    // Used once: the same code on a new challenge is refused.
    const next = await client
      .mutation(LOGIN, { input: { email: address, password: PASSWORD } })
      .toPromise();
    const reuse = await client
      .mutation(COMPLETE, {
        input: { challenge: next.error.graphQLErrors[0].extensions.challenge, recoveryCode: recoveryCodes[0] },
      })
      .toPromise();
    assert.equal(reuse.error.graphQLErrors[0].extensions.code, "INVALID_SECOND_FACTOR");
  });
});
