// Proves provider.mjs honours the contract in README.md by acting as a
// relying party with plain fetch: manual redirects and a tiny cookie jar,
// exactly what the Rust integration tests do.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';

import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, errors, jwtVerify } from 'jose';

const REDIRECT_URI = 'http://127.0.0.1:1/oidc/callback'; // never fetched
const CLIENT = { id: 'gatehouse', secret: 'gatehouse-test-secret-0123456789abcdef' };
const OTHER = { id: 'other-app', secret: 'other-app-secret-0123456789abcdef' };

let child;
let stderr = '';
let stdout = '';
let issuer;
let meta;
let jwks;

before(async () => {
  child = spawn(process.execPath, [new URL('./provider.mjs', import.meta.url).pathname], {
    env: { ...process.env, PORT: '0', REDIRECT_URIS: `${REDIRECT_URI},http://127.0.0.1:1/other` },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  child.stderr.on('data', (d) => { stderr += d; });
  child.stdout.on('data', (d) => { stdout += d; });
  const line = await new Promise((resolve, reject) => {
    child.stdout.on('data', () => stdout.includes('\n') && resolve(stdout.split('\n')[0]));
    child.once('exit', (code) => reject(new Error(`provider exited ${code}: ${stderr}`)));
  });
  const announced = JSON.parse(line);
  assert.equal(announced.issuer, `http://127.0.0.1:${announced.port}`);
  issuer = announced.issuer;
  meta = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
  // cooldownDuration 0: refetch as soon as an unknown kid shows up (after rotation).
  jwks = createRemoteJWKSet(new URL(meta.jwks_uri), { cooldownDuration: 0 });
});

after(async () => {
  // Closing stdin alone must make the provider exit (parent-died safety net).
  const exit = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  child.stdin.end();
  assert.deepEqual(await exit, { code: 0, signal: null });
  assert.equal(stdout.split('\n').length, 2, `one JSON line on stdout, got: ${stdout}`);
});

const b64url = (buf) => Buffer.from(buf).toString('base64url');

// Cookie jar honouring Path (oidc-provider scopes its interaction cookies to
// /interaction/:uid and /auth/:uid).
function jar() {
  const cookies = new Map(); // `${path} ${name}` -> { name, value, path }
  return {
    header(url) {
      const { pathname } = new URL(url);
      return [...cookies.values()]
        .filter((c) => pathname === c.path || pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))
        .map((c) => `${c.name}=${c.value}`).join('; ');
    },
    store(res) {
      for (const sc of res.headers.getSetCookie()) {
        const [pair, ...attrs] = sc.split(';').map((s) => s.trim());
        const [name, value] = pair.split(/=(.*)/s);
        const path = attrs.find((a) => /^path=/i.test(a))?.slice(5) || '/';
        const expired = attrs.some((a) => /^expires=/i.test(a) && new Date(a.slice(8)) < new Date());
        if (expired || value === '') cookies.delete(`${path} ${name}`);
        else cookies.set(`${path} ${name}`, { name, value, path });
      }
    },
  };
}

async function req(cookies, url, init = {}) {
  const res = await fetch(url, { ...init, redirect: 'manual', headers: { ...init.headers, cookie: cookies.header(url) } });
  cookies.store(res);
  return res;
}

const putAccount = (sub, account) => fetch(`${issuer}/__test/accounts/${sub}`, {
  method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(account),
});
const control = (path, body) => fetch(`${issuer}/__test/${path}`, {
  method: 'POST', headers: { 'content-type': 'application/json' }, body: body && JSON.stringify(body),
});

// Full authorization code flow with PKCE; returns the token response and the nonce sent.
async function login(sub, client = CLIENT, cookies = jar()) {
  const state = b64url(randomBytes(16));
  const nonce = b64url(randomBytes(16));
  const verifier = b64url(randomBytes(32));
  const auth = new URL(meta.authorization_endpoint);
  auth.search = new URLSearchParams({
    response_type: 'code', client_id: client.id, redirect_uri: REDIRECT_URI, scope: 'openid email profile',
    state, nonce, code_challenge: b64url(createHash('sha256').update(verifier).digest()), code_challenge_method: 'S256',
  });

  let res = await req(cookies, auth.href);
  assert.equal(res.status, 303);
  const interactionUrl = res.headers.get('location');
  const uid = interactionUrl.match(/\/interaction\/([^/]+)$/)[1];
  assert.equal(interactionUrl, `${issuer}/interaction/${uid}`);

  res = await req(cookies, interactionUrl);
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { uid, prompt: 'login', client_id: client.id, scope: 'openid email profile' });

  res = await req(cookies, `${interactionUrl}/login`, {
    method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ sub }),
  });
  assert.equal(res.status, 303);
  let location = res.headers.get('location');
  assert.equal(location, `${issuer}/auth/${uid}`);
  for (let hops = 0; !location.startsWith(REDIRECT_URI); hops += 1) {
    assert.ok(hops < 5, 'too many redirects');
    res = await req(cookies, new URL(location, issuer).href);
    assert.equal(res.status, 303, await res.clone().text());
    location = res.headers.get('location');
  }
  const callback = new URL(location);
  assert.equal(callback.searchParams.get('state'), state);
  assert.equal(callback.searchParams.get('iss'), issuer);

  res = await fetch(meta.token_endpoint, {
    method: 'POST',
    headers: { authorization: `Basic ${btoa(`${client.id}:${client.secret}`)}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code: callback.searchParams.get('code'), redirect_uri: REDIRECT_URI, code_verifier: verifier }),
  });
  const tokens = await res.json();
  assert.equal(res.status, 200, JSON.stringify(tokens));
  return { tokens, nonce, cookies };
}

const verify = (idToken, audience = CLIENT.id) => jwtVerify(idToken, jwks, { issuer, audience, algorithms: ['RS256'] });

test('discovery matches the contract', () => {
  assert.equal(meta.issuer, issuer);
  assert.ok(meta.code_challenge_methods_supported.includes('S256'));
  assert.ok(meta.token_endpoint_auth_methods_supported.includes('client_secret_basic'));
  assert.deepEqual(meta.response_types_supported, ['code']);
  for (const s of ['openid', 'email', 'profile']) assert.ok(meta.scopes_supported.includes(s));
});

test('code flow yields a verifiable ID token with nonce and e-mail claims', async () => {
  assert.equal((await putAccount('alice', { email: 'alice@example.com', email_verified: true, name: 'Alice' })).status, 204);
  const { tokens, nonce, cookies } = await login('alice');
  const { payload } = await verify(tokens.id_token);
  assert.equal(payload.sub, 'alice');
  assert.equal(payload.nonce, nonce);
  assert.equal(payload.email, 'alice@example.com');
  assert.equal(payload.email_verified, true);
  assert.equal(payload.name, 'Alice');

  // Same cookie jar, another user: no SSO, the interaction always runs.
  await putAccount('bob', { email: null, email_verified: false, name: 'Bob' });
  const bob = await verify((await login('bob', CLIENT, cookies)).tokens.id_token);
  assert.equal(bob.payload.sub, 'bob');
  assert.ok(!('email' in bob.payload) && !('email_verified' in bob.payload), 'no e-mail claims without e-mail');

  // Changing the e-mail keeps the sub.
  await putAccount('alice', { email: 'alice@new.example', email_verified: false, name: 'Alice' });
  const changed = await verify((await login('alice')).tokens.id_token);
  assert.equal(changed.payload.sub, 'alice');
  assert.equal(changed.payload.email, 'alice@new.example');
  assert.equal(changed.payload.email_verified, false);
});

test('a browser gets a login page whose form posts the same login', async () => {
  await putAccount('carol', { email: 'carol@example.com', email_verified: true, name: 'Carol' });
  const cookies = jar();
  const auth = new URL(meta.authorization_endpoint);
  auth.search = new URLSearchParams({
    response_type: 'code', client_id: CLIENT.id, redirect_uri: REDIRECT_URI, scope: 'openid email', state: 's', nonce: 'n',
    code_challenge: b64url(createHash('sha256').update('v'.repeat(43)).digest()), code_challenge_method: 'S256',
  });
  const interactionUrl = (await req(cookies, auth.href)).headers.get('location');
  const uid = interactionUrl.split('/').pop();
  const accept = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';
  let res = await req(cookies, interactionUrl, { headers: { accept } });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/html/);
  const page = await res.text();
  assert.ok(page.includes(`<form id="login-form" method="post" action="/interaction/${uid}/login">`), page);
  assert.match(page, /<input id="sub" name="sub"/);
  assert.match(page, /<button id="login-submit" type="submit">/);
  assert.match(page, /<option value="carol">carol@example\.com<\/option>/);
  // What the form sends, from the page's own origin.
  res = await req(cookies, new URL(`/interaction/${uid}/login`, issuer).href, {
    method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: issuer }, body: 'sub=carol',
  });
  assert.equal(res.status, 303);
  assert.equal(res.headers.get('location'), `${issuer}/auth/${uid}`);
});

test('unknown sub and missing PKCE are rejected', async () => {
  const cookies = jar();
  const auth = new URL(meta.authorization_endpoint);
  auth.search = new URLSearchParams({ response_type: 'code', client_id: CLIENT.id, redirect_uri: REDIRECT_URI, scope: 'openid', state: 's', nonce: 'n' });
  let res = await req(cookies, auth.href);
  const error = new URL(res.headers.get('location'));
  assert.equal(error.searchParams.get('error'), 'invalid_request'); // no code_challenge

  auth.searchParams.set('code_challenge', b64url(createHash('sha256').update('x'.repeat(43)).digest()));
  auth.searchParams.set('code_challenge_method', 'S256');
  res = await req(cookies, auth.href);
  res = await req(cookies, `${res.headers.get('location')}/login`, {
    method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'sub=nobody',
  });
  assert.equal(res.status, 400);
});

test('a second client gets ID tokens for another audience', async () => {
  const { tokens } = await login('alice', OTHER);
  await assert.rejects(verify(tokens.id_token), (e) => e instanceof errors.JWTClaimValidationFailed && e.claim === 'aud');
  assert.equal((await verify(tokens.id_token, OTHER.id)).payload.aud, OTHER.id);
});

test('ID token faults break verification for the right reason', async () => {
  const expect = {
    'tamper-signature': (e) => e instanceof errors.JWSSignatureVerificationFailed,
    'wrong-issuer': (e) => e instanceof errors.JWTClaimValidationFailed && e.claim === 'iss',
    'wrong-audience': (e) => e instanceof errors.JWTClaimValidationFailed && e.claim === 'aud',
    expired: (e) => e instanceof errors.JWTExpired,
  };
  try {
    for (const [fault, check] of Object.entries(expect)) {
      assert.equal((await control('faults', { id_token: fault })).status, 204);
      const { tokens, nonce } = await login('alice');
      await assert.rejects(verify(tokens.id_token), check, fault);
      if (fault === 'tamper-signature') {
        // Still parseable, and the claims checked before the signature are intact.
        const claims = decodeJwt(tokens.id_token);
        assert.deepEqual([claims.iss, claims.aud, claims.nonce], [issuer, CLIENT.id, nonce]);
      }
    }
    await control('faults', { id_token: 'wrong-nonce' });
    let { tokens, nonce } = await login('alice');
    const wrong = await verify(tokens.id_token); // signature and other claims still fine
    assert.ok(typeof wrong.payload.nonce === 'string' && wrong.payload.nonce !== nonce);

    await control('faults', { id_token: 'no-nonce' });
    ({ tokens } = await login('alice'));
    assert.ok(!('nonce' in (await verify(tokens.id_token)).payload));

    assert.equal((await control('faults', { id_token: 'bogus' })).status, 400);
  } finally {
    await control('faults', { id_token: null });
  }
  const { tokens, nonce } = await login('alice');
  assert.equal((await verify(tokens.id_token)).payload.nonce, nonce);
});

test('rotate-keys swaps the signing key and the JWKS', async () => {
  const count = async () => (await (await fetch(`${issuer}/__test/jwks-requests`)).json()).count;
  const oldKid = decodeProtectedHeader((await login('alice')).tokens.id_token).kid;
  const before = await count();
  assert.ok(before >= 1, 'jose fetched the JWKS earlier');

  assert.equal((await control('rotate-keys')).status, 204);
  const { tokens } = await login('alice');
  const newKid = decodeProtectedHeader(tokens.id_token).kid;
  assert.notEqual(newKid, oldKid);
  await verify(tokens.id_token); // unknown kid -> jose refetches the JWKS
  assert.equal(await count(), before + 1);

  const { keys } = await (await fetch(meta.jwks_uri)).json();
  assert.deepEqual(keys.map((k) => k.kid), [newKid]);
});

test('down answers 503 everywhere but /__test/, up restores', async () => {
  assert.equal((await control('down')).status, 204);
  try {
    assert.equal((await fetch(`${issuer}/.well-known/openid-configuration`)).status, 503);
    assert.equal((await fetch(meta.jwks_uri)).status, 503);
    assert.equal((await fetch(meta.token_endpoint, { method: 'POST' })).status, 503);
  } finally {
    assert.equal((await control('up')).status, 204);
  }
  assert.equal((await fetch(`${issuer}/.well-known/openid-configuration`)).status, 200);
});
