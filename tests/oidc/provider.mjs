// A real, certified OpenID provider (panva/oidc-provider) wrapped with a
// test-control API under /__test/, so Gatehouse's relying-party tests run
// against an implementation nobody on the team wrote. See README.md.
import { randomBytes } from 'node:crypto';
import { fstatSync } from 'node:fs';
import http from 'node:http';

import { CompactSign, calculateJwkThumbprint, decodeProtectedHeader, exportJWK, generateKeyPair } from 'jose';
import Provider, { errors } from 'oidc-provider';

// oidc-provider prints notices with console.info; stdout is reserved for the
// single JSON line the parent test reads, so send everything else to stderr.
console.log = console.info = console.error;

const HOST = process.env.HOST || '127.0.0.1';
const PORT = Number(process.env.PORT || 0);
const REDIRECT_URIS = (process.env.REDIRECT_URIS || '').split(',').map((s) => s.trim()).filter(Boolean);
if (REDIRECT_URIS.length === 0) {
  console.error('REDIRECT_URIS is required (comma-separated exact redirect URIs)');
  process.exit(2);
}
const clientFor = (id, secret) => ({
  client_id: id,
  client_secret: secret,
  redirect_uris: REDIRECT_URIS,
  grant_types: ['authorization_code'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
  id_token_signed_response_alg: 'RS256',
});
const CLIENTS = [
  clientFor(process.env.CLIENT_ID || 'gatehouse', process.env.CLIENT_SECRET || 'gatehouse-test-secret-0123456789abcdef'),
  clientFor(process.env.SECOND_CLIENT_ID || 'other-app', process.env.SECOND_CLIENT_SECRET || 'other-app-secret-0123456789abcdef'),
];

const FAULTS = new Set(['tamper-signature', 'wrong-issuer', 'wrong-audience', 'wrong-nonce', 'expired', 'no-nonce']);

// Mutable test state, shared by every Provider instance (rotate-keys swaps instances).
const accounts = new Map(); // sub -> { email, email_verified, name }
let idTokenFault = null;
let down = false;
let jwksRequests = 0;
let current; // { provider, callback, privateKey }

const epoch = () => Math.floor(Date.now() / 1000);

async function newSigningKey() {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = await exportJWK(privateKey);
  const kid = await calculateJwkThumbprint(jwk);
  return { privateKey, jwk: { ...jwk, kid, alg: 'RS256', use: 'sig' } };
}

async function findAccount(_ctx, sub) {
  const account = accounts.get(sub);
  if (!account) return undefined;
  return {
    accountId: sub,
    async claims() {
      const claims = { sub };
      if (account.email != null) {
        claims.email = account.email;
        claims.email_verified = account.email_verified === true;
      }
      if (account.name != null) claims.name = account.name;
      return claims;
    },
  };
}

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const utf8 = new TextDecoder('utf-8', { fatal: true });
const decodeJson = (b64) => {
  try {
    const value = JSON.parse(utf8.decode(Buffer.from(b64, 'base64url')));
    return value && typeof value === 'object' ? value : undefined;
  } catch {
    return undefined;
  }
};

// Flips one payload character such that the payload is still valid UTF-8 JSON
// with the same claim names and types, and the claims a verifier may check
// before the signature (iss, aud, exp, ...) are untouched: whatever its order
// of checks, a verifier must fail on the signature.
function tamper(h, p, s) {
  const original = decodeJson(p);
  const keep = ['iss', 'aud', 'azp', 'exp', 'iat', 'nbf', 'nonce', 'auth_time'];
  const shape = (v) => JSON.stringify(Object.entries(v).map(([k, x]) => [k, typeof x]));
  const unchanged = (v) => shape(v) === shape(original)
    && keep.every((k) => JSON.stringify(v[k]) === JSON.stringify(original[k]));
  // The last character may carry padding bits, so it is never the one flipped.
  for (let i = 0; i < p.length - 1; i += 1) {
    for (const c of B64URL) {
      const candidate = p.slice(0, i) + c + p.slice(i + 1);
      const changed = c !== p[i] && decodeJson(candidate);
      if (changed && unchanged(changed)) return `${h}.${candidate}.${s}`;
    }
  }
  throw new Error('could not tamper id_token payload');
}

// Rewrites an ID token according to the active fault. Everything except
// tamper-signature is re-signed with the current key so only one claim is wrong.
async function corrupt(idToken, fault) {
  const [h, p, s] = idToken.split('.');
  if (fault === 'tamper-signature') return tamper(h, p, s);
  const payload = JSON.parse(Buffer.from(p, 'base64url').toString());
  switch (fault) {
    case 'wrong-issuer': payload.iss = 'http://evil.example'; break;
    case 'wrong-audience': payload.aud = 'other-app'; break;
    case 'wrong-nonce': payload.nonce = randomBytes(16).toString('base64url'); break;
    case 'expired': payload.exp = epoch() - 600; payload.iat = epoch() - 4200; break;
    case 'no-nonce': delete payload.nonce; break;
    default: throw new Error(`unknown fault ${fault}`);
  }
  const { alg, kid } = decodeProtectedHeader(idToken);
  return new CompactSign(Buffer.from(JSON.stringify(payload)))
    .setProtectedHeader({ alg, kid })
    .sign(current.privateKey);
}

async function readBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw new Error('body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString();
}

const escapeHtml = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

// The login page a browser gets: one field for the account's sub, which
// POSTs to the same endpoint the Rust tests call. The known subs are
// offered in the field's suggestions.
function loginPage(uid, clientId, scope) {
  const options = [...accounts].map(([sub, { email }]) =>
    `<option value="${escapeHtml(sub)}">${escapeHtml(email ?? 'no e-mail')}</option>`).join('');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Test provider: sign in</title>
<style>
  body { font-family: system-ui, sans-serif; background: #f1efe8; color: #2b2417; margin: 0; }
  main { max-width: 24rem; margin: 3rem auto; padding: 1.5rem 2rem; background: #fff; border-top: 6px solid #b4561f; border-radius: 6px; }
  label, input, button { display: block; width: 100%; box-sizing: border-box; font: inherit; }
  input { padding: .45rem; margin: .25rem 0 1rem; }
  button { padding: .5rem; background: #b4561f; color: #fff; border: 0; border-radius: 4px; cursor: pointer; }
  small { color: #6d6455; }
</style>
</head>
<body>
<main>
  <h1>Test provider</h1>
  <p>Sign in to continue to <strong id="client">${escapeHtml(clientId)}</strong>.</p>
  <form id="login-form" method="post" action="/interaction/${escapeHtml(uid)}/login">
    <label for="sub">Account (its subject)</label>
    <input id="sub" name="sub" list="accounts" required autofocus autocomplete="off">
    <datalist id="accounts">${options}</datalist>
    <button id="login-submit" type="submit">Sign in and allow</button>
  </form>
  <p><small>It asks for: ${escapeHtml(scope)}. This provider is for tests: no password.</small></p>
</main>
</body>
</html>
`;
}

// Minimal interaction endpoints: the Rust test drives them directly (JSON);
// a browser (Accept: text/html) gets a login page that posts the same form.
// Also applies ID token faults.
function testHooks(provider) {
  return async (ctx, next) => {
    const m = /^\/interaction\/([^/]+)(\/login)?$/.exec(ctx.path);
    if (!m) {
      await next();
      if (idTokenFault && ctx.method === 'POST' && ctx.path === '/token' && typeof ctx.body?.id_token === 'string') {
        ctx.body = { ...ctx.body, id_token: await corrupt(ctx.body.id_token, idTokenFault) };
      }
      return;
    }
    const [, uid, login] = m;
    const fail = (status, description) => {
      ctx.status = status;
      ctx.body = { error: 'invalid_request', error_description: description };
    };
    let details;
    try {
      details = await provider.interactionDetails(ctx.req, ctx.res);
    } catch (err) {
      if (err instanceof errors.SessionNotFound) return fail(400, err.error_description || err.message);
      throw err;
    }
    if (details.uid !== uid) return fail(400, 'interaction cookie does not match the uid in the path');

    if (!login && ctx.method === 'GET') {
      if ((ctx.get('accept') || '').includes('text/html')) {
        ctx.type = 'html';
        ctx.body = loginPage(uid, details.params.client_id, details.params.scope);
        return;
      }
      ctx.body = { uid, prompt: details.prompt.name, client_id: details.params.client_id, scope: details.params.scope };
      return;
    }
    if (!login || ctx.method !== 'POST') return fail(405, 'method not allowed');

    const sub = new URLSearchParams(await readBody(ctx.req)).get('sub');
    if (!sub || !accounts.has(sub)) return fail(400, `unknown account ${JSON.stringify(sub)}`);

    // Finish login AND consent in one step: grant exactly what was requested,
    // so the resume never stops at a consent prompt.
    const { params } = details;
    let grant = details.grantId ? await provider.Grant.find(details.grantId) : undefined;
    if (!grant || grant.accountId !== sub) grant = new provider.Grant({ accountId: sub, clientId: params.client_id });
    if (params.scope) grant.addOIDCScope(params.scope);
    if (params.claims) {
      const requested = JSON.parse(params.claims);
      grant.addOIDCClaims([...Object.keys(requested.id_token || {}), ...Object.keys(requested.userinfo || {})]);
    }
    const grantId = await grant.save();
    const returnTo = await provider.interactionResult(ctx.req, ctx.res, {
      login: { accountId: sub },
      consent: { grantId },
    }, { mergeWithLastSubmission: false });
    ctx.redirect(returnTo);
    ctx.status = 303;
  };
}

async function buildProvider(issuer) {
  const key = await newSigningKey();
  const provider = new Provider(issuer, {
    clients: CLIENTS,
    jwks: { keys: [key.jwk] },
    findAccount,
    scopes: ['openid', 'email', 'profile'],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    responseTypes: ['code'],
    pkce: { required: () => true },
    // Put scope-requested claims (email, name) in the ID token itself; by
    // default oidc-provider only serves them from userinfo in the code flow.
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: false } },
    // Absolute URL so every Location header this process sends is absolute.
    interactions: { url: async (_ctx, interaction) => `${issuer}/interaction/${interaction.uid}` },
    // No SSO: the session cookie is scoped to a path no request ever uses, so
    // every authorization request logs in afresh through /interaction/:uid.
    // A test reusing its cookie jar for a second user can then neither be
    // silently logged in as the first one nor hit a logout confirmation page.
    cookies: { long: { httpOnly: true, sameSite: 'lax', path: '/__no-sso' } },
    // Explicit TTLs keep oidc-provider from printing "you SHOULD change" notices.
    ttl: { AccessToken: 3600, AuthorizationCode: 600, IdToken: 3600, Interaction: 3600, Session: 86400, Grant: 86400 },
    renderError: async (ctx, out) => { ctx.type = 'json'; ctx.body = out; },
  });
  provider.use(testHooks(provider));
  return { provider, callback: provider.callback(), privateKey: key.privateKey };
}

function send(res, status, body) {
  if (body === undefined) {
    res.writeHead(status).end();
  } else {
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  }
}

async function control(req, res, path, issuer) {
  const account = /^\/__test\/accounts\/([^/]+)$/.exec(path);
  const route = `${req.method} ${account ? '/__test/accounts/:sub' : path}`;
  let body = {};
  if (req.method === 'PUT' || req.method === 'POST') {
    const text = await readBody(req);
    try {
      body = text ? JSON.parse(text) : {};
    } catch {
      return send(res, 400, { error: 'body is not JSON' });
    }
  }
  switch (route) {
    case 'PUT /__test/accounts/:sub': {
      const { email = null, email_verified: emailVerified = false, name = null } = body ?? {};
      if ((email !== null && typeof email !== 'string') || typeof emailVerified !== 'boolean'
        || (name !== null && typeof name !== 'string')) {
        return send(res, 400, { error: 'expected {email: string|null, email_verified: boolean, name: string}' });
      }
      accounts.set(decodeURIComponent(account[1]), { email, email_verified: emailVerified, name });
      return send(res, 204);
    }
    case 'POST /__test/faults': {
      const fault = body?.id_token ?? null;
      if (fault !== null && !FAULTS.has(fault)) return send(res, 400, { error: `unknown id_token fault ${fault}` });
      idTokenFault = fault;
      return send(res, 204);
    }
    case 'POST /__test/rotate-keys':
      current = await buildProvider(issuer);
      return send(res, 204);
    case 'POST /__test/down': down = true; return send(res, 204);
    case 'POST /__test/up': down = false; return send(res, 204);
    case 'GET /__test/jwks-requests': return send(res, 200, { count: jwksRequests });
    default: return send(res, 404, { error: `no test route ${route}` });
  }
}

const server = http.createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(PORT, HOST, resolve);
});
const { port } = server.address();
const issuer = `http://${HOST}:${port}`;
current = await buildProvider(issuer);
const jwksPath = new URL(current.provider.urlFor('jwks')).pathname;

server.on('request', (req, res) => {
  const { pathname } = new URL(req.url, issuer);
  if (pathname.startsWith('/__test/')) {
    control(req, res, pathname, issuer).catch((err) => {
      console.error(err);
      if (!res.headersSent) send(res, 500, { error: String(err) });
    });
    return;
  }
  // Counts every JWKS request, including ones answered 503 while "down".
  if (pathname === jwksPath) jwksRequests += 1;
  if (down) return send(res, 503, { error: 'temporarily_unavailable' });
  return current.callback(req, res);
});

process.stdout.write(`${JSON.stringify({ issuer, port })}\n`);

const exit = () => {
  server.closeAllConnections();
  server.close();
  process.exit(0);
};
process.on('SIGTERM', exit);
process.on('SIGINT', exit);
// A parent holding our stdin pipe may die without signalling us; EOF on the
// pipe is our cue to go. Only for pipes/sockets: /dev/null or a TTY would
// otherwise end us at once (or on Ctrl-D).
let stdin;
try { stdin = fstatSync(0); } catch { /* no stdin at all */ }
if (stdin?.isFIFO() || stdin?.isSocket()) {
  process.stdin.on('end', exit).on('close', exit).resume();
}
