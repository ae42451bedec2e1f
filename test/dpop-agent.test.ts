/**
 * DPoP (RFC 9449) end to end with real peers: the sandbox oidc-provider
 * issues DPoP-bound access tokens (client_credentials with a DPoP proof at
 * its token endpoint, `cnf.jkt` in the JWT), the control plane compiles each
 * server's `dpop` setting into a signed bundle, and a real agent checks the
 * proof on every request. Three servers on one agent: off, allowed, required.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { request } from "node:http";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { calculateJwkThumbprint, decodeJwt, exportJWK, generateKeyPair, SignJWT, type JWK } from "jose";

import { stopBundleListener } from "@/lib/agents/bundle-waiter";
import { listBundles, publishBundle } from "@/lib/bundles/service";
import { activeSigningKey, publicKeys, type Kek } from "@/lib/bundles/signing";
import { accessTokenHash } from "@/lib/enforcement/dpop";
import { createEnrollmentToken, createFleet } from "@/lib/fleets/service";
import { createServerInput } from "@/lib/servers/schemas";
import { createServer, updateServer } from "@/lib/servers/service";
import { loadConfig } from "@/agent/config";
import { startAgent, type RunningAgent } from "@/agent/main";
import { startAuthServer, type AuthServer } from "@/sandbox/auth-server";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { freePort, startSandbox, type Sandbox } from "./sandbox";
import { startControlPlane, type Listening } from "./agent-proc-harness";
import { clientCredentialsToken, registerClient } from "./auth-server-helpers";

const kek: Kek = { id: "kek-dpop-test", key: randomBytes(32) };
const g = globalThis as unknown as { __mandateDb?: Promise<unknown> };
const SCOPES = ["tickets:read"];
const ALGS = 'algs="ES256 ES384 EdDSA Ed25519 RS256 PS256"';

let t: TestDb;
let owner: MadeUser;
let sandbox: Sandbox;
let cp: Listening;
let as: AuthServer;
let agent: RunningAgent;
let dataDir: string;
let tenantId: string;
let port: number;
const uri = (name: string) => `http://127.0.0.1:${port}/${name}`;

interface Key {
  priv: CryptoKey;
  jwk: JWK;
  jkt: string;
}
let key: Key;
let otherKey: Key;

async function newKey(): Promise<Key> {
  const k = await generateKeyPair("ES256");
  const jwk = await exportJWK(k.publicKey);
  return { priv: k.privateKey, jwk, jkt: await calculateJwkThumbprint(jwk, "sha256") };
}

async function proof(k: Key, htm: string, htu: string, token?: string, iat = Math.floor(Date.now() / 1000), jti: string = randomUUID()): Promise<string> {
  return new SignJWT({ htm, htu, iat, jti, ...(token ? { ath: accessTokenHash(token) } : {}) }).setProtectedHeader({ alg: "ES256", typ: "dpop+jwt", jwk: k.jwk }).sign(k.priv);
}

/** A DPoP-bound token from the sandbox AS: client_credentials with a DPoP proof at its token endpoint. */
async function boundToken(resource: string, k: Key = key): Promise<string> {
  const client = await registerClient(as, { grant_types: ["client_credentials"], response_types: [], redirect_uris: [], token_endpoint_auth_method: "client_secret_post", tenant: tenantId });
  const res = await fetch(`${as.url}/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", dpop: await proof(k, "POST", `${as.url}/token`) },
    body: new URLSearchParams({ grant_type: "client_credentials", client_id: client.client_id, client_secret: client.client_secret!, resource, scope: SCOPES.join(" ") }).toString(),
  });
  const body = (await res.json()) as { access_token?: string; token_type?: string };
  if (res.status !== 200 || !body.access_token) throw new Error(`token request failed: ${res.status} ${JSON.stringify(body)}`);
  expect(body.token_type).toBe("DPoP");
  return body.access_token;
}

// Reaches the upstream only past the agent's authentication (an initialize needs no catalogue or scope).
const PING = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "dpop-test", version: "1.0.0" } } });
function call(url: string, authorization: string | null, dpop?: string | string[]): Promise<Response> {
  const headers = new Headers({ "content-type": "application/json", accept: "application/json, text/event-stream" });
  if (authorization) headers.set("authorization", authorization);
  for (const d of dpop === undefined ? [] : Array.isArray(dpop) ? dpop : [dpop]) headers.append("dpop", d);
  return fetch(url, { method: "POST", headers, body: PING });
}

/** Two DPoP header lines (fetch would join them into one): node:http sends an array as repeated lines. */
function callTwoProofs(url: string, authorization: string, proofs: string[]): Promise<{ status: number; challenge: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization, dpop: proofs } }, (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, challenge: String(res.headers["www-authenticate"] ?? "") });
    });
    req.on("error", reject);
    req.end(PING);
  });
}

async function expect401(res: Response, pattern: RegExp): Promise<string> {
  const h = res.headers.get("www-authenticate") ?? "";
  await res.body?.cancel();
  expect(res.status, h).toBe(401);
  expect(h).toMatch(pattern);
  return h;
}

async function expectPass(res: Response): Promise<void> {
  const text = await res.text();
  expect(res.status, text).toBe(200);
}

beforeAll(async () => {
  t = await createTestDb();
  g.__mandateDb = Promise.resolve(t.handle);
  owner = await makeUser(t.db, { role: "owner" });
  [sandbox, cp, port] = await Promise.all([startSandbox(), startControlPlane(), freePort()]);
  tenantId = (await makeTenant(t.db, owner.actor)).id;
  as = await startAuthServer({ resources: { [uri("off")]: { scopes: SCOPES }, [uri("allowed")]: { scopes: SCOPES }, [uri("required")]: { scopes: SCOPES } }, clientTenant: tenantId });
  const ids: string[] = [];
  for (const mode of ["off", "allowed", "required"] as const) {
    const s = await createServer(
      owner.ctx,
      createServerInput.parse({
        tenantId,
        name: uniq(`DPoP ${mode} `),
        resourceUri: uri(mode),
        upstreamUrl: sandbox.url,
        scopes: SCOPES,
        issuers: [{ issuer: as.issuer }],
        dpop: mode === "off" ? undefined : mode,
      }),
    );
    expect(s!.dpop).toBe(mode);
    ids.push(s!.id);
  }
  // The API's update path takes the setting too (and back).
  expect((await updateServer(owner.ctx, ids[1]!, { dpop: "required" }))!.dpop).toBe("required");
  expect((await updateServer(owner.ctx, ids[1]!, { dpop: "allowed" }))!.dpop).toBe("allowed");
  const fleet = (await createFleet(owner.ctx, { name: uniq("DPoP "), serverIds: ids }))!;
  await activeSigningKey(t.db, kek);
  const keys = await publicKeys(t.db);
  const enrollment = await createEnrollmentToken(owner.ctx, fleet.id);
  await publishBundle(owner.ctx, fleet.id, { note: "dpop" }, kek);
  expect((await listBundles(owner.ctx, fleet.id)).activeRevision).toBeTruthy();
  dataDir = await mkdtemp(path.join(tmpdir(), "mandate-agent-dpop-"));
  const loaded = loadConfig(["--control-plane", cp.url, "--enrollment-token", enrollment.token, "--port", String(port), "--data-dir", dataDir, "--wait", "2", "--name", "dpop-agent"], {
    MANDATE_BUNDLE_KEYS: JSON.stringify({ keys: Object.entries(keys).map(([kid, k]) => ({ ...k, kid })) }),
  });
  if (!loaded.ok) throw new Error(loaded.errors.join("; "));
  agent = await startAgent(loaded.config, { log: () => {} });
  const end = Date.now() + 20_000;
  while ((await fetch(`${agent.url}/readyz`)).status !== 200) {
    if (Date.now() > end) throw new Error("the agent did not install the bundle");
    await new Promise((r) => setTimeout(r, 50));
  }
  key = await newKey();
  otherKey = await newKey();
}, 120_000);

afterAll(async () => {
  await agent?.stop();
  await Promise.all([sandbox?.stop(), cp?.close(), as?.stop()]);
  delete g.__mandateDb;
  if (t) await stopBundleListener(t.handle);
  await t?.close();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe("DPoP at the agent, with tokens from the sandbox AS", () => {
  it("the AS binds the token to the proof key (cnf.jkt = RFC 7638 thumbprint)", async () => {
    const token = await boundToken(uri("allowed"));
    expect((decodeJwt(token).cnf as { jkt?: string }).jkt).toBe(key.jkt);
  });

  it("allowed: the right proof passes, on every request with a fresh jti (the verified-token cache never skips it)", async () => {
    const token = await boundToken(uri("allowed"));
    await expectPass(await call(uri("allowed"), `DPoP ${token}`, await proof(key, "POST", uri("allowed"), token)));
    await expectPass(await call(uri("allowed"), `DPoP ${token}`, await proof(key, "POST", uri("allowed"), token)));
    // The token is now in the verified-token cache: without a proof it is still refused.
    await expect401(await call(uri("allowed"), `DPoP ${token}`), /DPoP algs="[^"]+", error="invalid_dpop_proof", error_description="a DPoP proof \(DPoP header\) is required"/);
  });

  it("allowed: a bound token is refused without a proof, for another URL or method, replayed, by another key, stale, with two proofs, or as Bearer", async () => {
    const token = await boundToken(uri("allowed"));
    const url = uri("allowed");
    const proofError = (why: string) => new RegExp(`DPoP ${ALGS}, error="invalid_dpop_proof", error_description="[^"]*${why}`);
    await expect401(await call(url, `DPoP ${token}`), proofError("required"));
    await expect401(await call(url, `DPoP ${token}`, await proof(key, "POST", uri("required"), token)), proofError("another URL"));
    await expect401(await call(url, `DPoP ${token}`, await proof(key, "GET", url, token)), proofError("another HTTP method"));
    const once = await proof(key, "POST", url, token);
    await expectPass(await call(url, `DPoP ${token}`, once));
    await expect401(await call(url, `DPoP ${token}`, once), proofError("already used"));
    await expect401(await call(url, `DPoP ${token}`, await proof(otherKey, "POST", url, token)), proofError("another key"));
    await expect401(await call(url, `DPoP ${token}`, await proof(key, "POST", url, token, Math.floor(Date.now() / 1000) - 300)), proofError("iat"));
    await expect401(await call(url, `DPoP ${token}`, await proof(key, "POST", url)), proofError("ath"));
    // Joined into one header (as fetch does): not a JWS. Two header lines: refused as such.
    await expect401(await call(url, `DPoP ${token}`, [await proof(key, "POST", url, token), await proof(key, "POST", url, token)]), proofError("not a compact JWS"));
    const two = await callTwoProofs(url, `DPoP ${token}`, [await proof(key, "POST", url, token), await proof(key, "POST", url, token)]);
    expect(two.status).toBe(401);
    expect(two.challenge).toMatch(proofError("exactly one DPoP header"));
    // RFC 9449 §7.2: a bound token sent as a bearer token, with or without a proof.
    const asBearer = await expect401(
      await call(url, `Bearer ${token}`, await proof(key, "POST", url, token)),
      /Bearer resource_metadata="[^"]+", scope="tickets:read", error="invalid_token", error_description="the access token is DPoP-bound/,
    );
    expect(asBearer).toContain(`DPoP ${ALGS}`);
  });

  it("allowed: a plain bearer token still passes; the 401 without a token advertises both schemes", async () => {
    const { token } = await clientCredentialsToken(as, uri("allowed"), SCOPES.join(" "), tenantId);
    expect(decodeJwt(token).cnf).toBeUndefined();
    await expectPass(await call(uri("allowed"), `Bearer ${token}`));
    const h = await expect401(await call(uri("allowed"), null), /^Bearer resource_metadata="[^"]+", scope="tickets:read", DPoP algs=/);
    expect(h).not.toContain("error=");
  });

  it("required: a plain bearer token is refused with a DPoP challenge carrying resource_metadata; a bound token with its proof passes", async () => {
    const { token } = await clientCredentialsToken(as, uri("required"), SCOPES.join(" "), tenantId);
    const h = await expect401(
      await call(uri("required"), `Bearer ${token}`),
      /^DPoP resource_metadata="http:\/\/127\.0\.0\.1:\d+\/\.well-known\/oauth-protected-resource\/required", scope="tickets:read", algs="[^"]+", error="invalid_token", error_description="this server accepts only DPoP-bound access tokens"$/,
    );
    expect(h).not.toMatch(/^Bearer/);
    const bound = await boundToken(uri("required"));
    await expectPass(await call(uri("required"), `DPoP ${bound}`, await proof(key, "POST", uri("required"), bound)));
    const prm = (await (await fetch(`http://127.0.0.1:${port}/.well-known/oauth-protected-resource/required`)).json()) as Record<string, unknown>;
    expect(prm.dpop_bound_access_tokens_required).toBe(true);
    expect(prm.dpop_signing_alg_values_supported).toContain("ES256");
  });

  it("off: bearer tokens as before (Bearer challenge alone, no DPoP in metadata); the DPoP scheme and bound tokens are refused", async () => {
    const { token } = await clientCredentialsToken(as, uri("off"), SCOPES.join(" "), tenantId);
    await expectPass(await call(uri("off"), `Bearer ${token}`));
    const h = await expect401(await call(uri("off"), null), /^Bearer resource_metadata="[^"]+", scope="tickets:read"$/);
    expect(h).not.toContain("DPoP");
    const prm = (await (await fetch(`http://127.0.0.1:${port}/.well-known/oauth-protected-resource/off`)).json()) as Record<string, unknown>;
    expect(prm.dpop_signing_alg_values_supported).toBeUndefined();
    const bound = await boundToken(uri("off"));
    await expect401(await call(uri("off"), `DPoP ${bound}`, await proof(key, "POST", uri("off"), bound)), /error="invalid_token", error_description="this server does not accept DPoP tokens"/);
    await expect401(await call(uri("off"), `Bearer ${bound}`), /error="invalid_token", error_description="the access token is DPoP-bound/);
  });
});
