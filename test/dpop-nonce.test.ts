/**
 * Resource-server-provided DPoP nonces (RFC 9449 §9), per server
 * (`dpopNonce`): the agent answers a proof without its nonce with 401
 * `use_dpop_nonce` and a `DPoP-Nonce` header; the retry with it passes.
 * Nonces are stateless HMACs of a time window, so replicas sharing the key
 * accept each other's and rotation needs no state. Real peers: the sandbox
 * oidc-provider issuing DPoP-bound tokens, real jose proofs, a real agent.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT, type JWK } from "jose";

import { stopBundleListener } from "@/lib/agents/bundle-waiter";
import { publishBundle } from "@/lib/bundles/service";
import { activeSigningKey, publicKeys, type Kek } from "@/lib/bundles/signing";
import { accessTokenHash, DpopNonces, DpopVerifier } from "@/lib/enforcement/dpop";
import { createEnrollmentToken, createFleet } from "@/lib/fleets/service";
import { createServerInput } from "@/lib/servers/schemas";
import { createServer, updateServer } from "@/lib/servers/service";
import { loadConfig } from "@/agent/config";
import { startAgent, type RunningAgent } from "@/agent/main";
import { startAuthServer, type AuthServer } from "@/sandbox/auth-server";
import { createTestDb, makeTenant, makeUser, uniq, type MadeUser, type TestDb } from "./db";
import { freePort, startSandbox, type Sandbox } from "./sandbox";
import { startControlPlane, type Listening } from "./agent-proc-harness";
import { registerClient } from "./auth-server-helpers";

const kek: Kek = { id: "kek-dpop-nonce-test", key: randomBytes(32) };
const g = globalThis as unknown as { __mandateDb?: Promise<unknown> };
const SCOPES = ["tickets:read"];

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

async function newKey(): Promise<Key> {
  const k = await generateKeyPair("ES256");
  const jwk = await exportJWK(k.publicKey);
  return { priv: k.privateKey, jwk, jkt: await calculateJwkThumbprint(jwk, "sha256") };
}

async function proof(k: Key, htm: string, htu: string, token?: string, nonce?: string, iat = Math.floor(Date.now() / 1000)): Promise<string> {
  return new SignJWT({ htm, htu, iat, jti: randomUUID(), ...(token ? { ath: accessTokenHash(token) } : {}), ...(nonce ? { nonce } : {}) })
    .setProtectedHeader({ alg: "ES256", typ: "dpop+jwt", jwk: k.jwk })
    .sign(k.priv);
}

async function boundToken(resource: string): Promise<string> {
  const client = await registerClient(as, { grant_types: ["client_credentials"], response_types: [], redirect_uris: [], token_endpoint_auth_method: "client_secret_post", tenant: tenantId });
  const res = await fetch(`${as.url}/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", dpop: await proof(key, "POST", `${as.url}/token`) },
    body: new URLSearchParams({ grant_type: "client_credentials", client_id: client.client_id, client_secret: client.client_secret!, resource, scope: SCOPES.join(" ") }).toString(),
  });
  const body = (await res.json()) as { access_token?: string };
  if (res.status !== 200 || !body.access_token) throw new Error(`token request failed: ${res.status}`);
  return body.access_token;
}

const PING = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "nonce-test", version: "1.0.0" } } });
const call = (url: string, token: string, dpop: string) =>
  fetch(url, { method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `DPoP ${token}`, dpop }, body: PING });

beforeAll(async () => {
  t = await createTestDb();
  g.__mandateDb = Promise.resolve(t.handle);
  owner = await makeUser(t.db, { role: "owner" });
  [sandbox, cp, port] = await Promise.all([startSandbox(), startControlPlane(), freePort()]);
  tenantId = (await makeTenant(t.db, owner.actor)).id;
  as = await startAuthServer({ resources: { [uri("nonce")]: { scopes: SCOPES }, [uri("plain")]: { scopes: SCOPES } }, clientTenant: tenantId });
  const ids: string[] = [];
  for (const name of ["nonce", "plain"]) {
    const s = await createServer(
      owner.ctx,
      createServerInput.parse({ tenantId, name: uniq(`Nonce ${name} `), resourceUri: uri(name), upstreamUrl: sandbox.url, scopes: SCOPES, issuers: [{ issuer: as.issuer }], dpop: "allowed" }),
    );
    expect(s!.dpopNonce).toBe(false);
    ids.push(s!.id);
  }
  // The setting through the service's update path.
  expect((await updateServer(owner.ctx, ids[0]!, { dpopNonce: true }))!.dpopNonce).toBe(true);
  const fleet = (await createFleet(owner.ctx, { name: uniq("Nonce "), serverIds: ids }))!;
  await activeSigningKey(t.db, kek);
  const keys = await publicKeys(t.db);
  const enrollment = await createEnrollmentToken(owner.ctx, fleet.id);
  await publishBundle(owner.ctx, fleet.id, { note: "dpop nonce" }, kek);
  dataDir = await mkdtemp(path.join(tmpdir(), "mandate-agent-nonce-"));
  const loaded = loadConfig(["--control-plane", cp.url, "--enrollment-token", enrollment.token, "--port", String(port), "--data-dir", dataDir, "--wait", "2"], {
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
}, 120_000);

afterAll(async () => {
  await agent?.stop();
  await Promise.all([sandbox?.stop(), cp?.close(), as?.stop()]);
  delete g.__mandateDb;
  if (t) await stopBundleListener(t.handle);
  await t?.close();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe("DPoP nonces through a real agent", () => {
  it("only the server with the setting carries it in the bundle (others hash as before)", () => {
    const servers = agent.sync.current!.content.servers;
    expect(servers.find((s) => s.resourceUri === uri("nonce"))!.dpopNonce).toBe(true);
    expect("dpopNonce" in servers.find((s) => s.resourceUri === uri("plain"))!).toBe(false);
  });

  it("a proof without a nonce gets 401 use_dpop_nonce with a DPoP-Nonce; the retry with it passes; a forged or another replica's nonce does not", async () => {
    const url = uri("nonce");
    const token = await boundToken(url);
    const first = await call(url, token, await proof(key, "POST", url, token));
    await first.body?.cancel();
    // Before: 200 (no nonce was ever asked for).
    expect(first.status).toBe(401);
    expect(first.headers.get("www-authenticate")).toMatch(/DPoP algs="[^"]+", error="use_dpop_nonce", error_description="a DPoP nonce is required/);
    const nonce = first.headers.get("dpop-nonce");
    expect(nonce).toMatch(/^[0-9a-z]+\.[A-Za-z0-9_-]{22}$/);

    const retry = await call(url, token, await proof(key, "POST", url, token, nonce!));
    expect(retry.status, await retry.text()).toBe(200);
    // The same nonce keeps working within its window (a new proof, a new jti each time).
    const again = await call(url, token, await proof(key, "POST", url, token, nonce!));
    expect(again.status, await again.text()).toBe(200);

    const [w] = nonce!.split(".");
    const forged = await call(url, token, await proof(key, "POST", url, token, `${w}.${"A".repeat(22)}`));
    await forged.body?.cancel();
    expect(forged.status).toBe(401);
    expect(forged.headers.get("www-authenticate")).toMatch(/error="use_dpop_nonce", error_description="the DPoP nonce is invalid or expired/);
    expect(forged.headers.get("dpop-nonce")).toBeTruthy();
    // A nonce another replica made with its own key.
    const foreign = await call(url, token, await proof(key, "POST", url, token, new DpopNonces().issue(url)));
    await foreign.body?.cancel();
    expect(foreign.status).toBe(401);
  });

  it("a server without the setting accepts proofs without a nonce, as before", async () => {
    const url = uri("plain");
    const token = await boundToken(url);
    const res = await call(url, token, await proof(key, "POST", url, token));
    expect(res.status, await res.text()).toBe(200);
    expect(res.headers.get("dpop-nonce")).toBeNull();
  });

  it("each use_dpop_nonce refusal has its decision record (no token in it)", async () => {
    await agent.wal.flush();
    let text = "";
    for (const f of await readdir(dataDir)) if (f.startsWith("decisions")) text += await readFile(path.join(dataDir, f), "utf8");
    const lines = text
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { method: string; reason: string; tenantId: string | null });
    const nonceLines = lines.filter((l) => l.reason.startsWith("use_dpop_nonce:"));
    expect(nonceLines.length).toBeGreaterThan(0);
    expect(nonceLines.every((l) => l.method === "(gate)" && l.tenantId === tenantId)).toBe(true);
  });
});

describe("DpopNonces and the verifier (real proofs, a controlled clock)", () => {
  const resource = "https://mcp.example.com/mcp";

  it("rotate per window: fresh, then stale (accepted) in the next, refused after; replicas sharing the key agree; another key or resource refuses", () => {
    let now = 1_000_000_000_000;
    const k = randomBytes(32);
    const a = new DpopNonces({ key: k, windowSeconds: 30, now: () => now });
    const b = new DpopNonces({ key: k, windowSeconds: 30, now: () => now });
    const n = a.issue(resource);
    expect(b.check(n, resource)).toBe("fresh");
    expect(new DpopNonces({ windowSeconds: 30, now: () => now }).check(n, resource)).toBe("bad");
    expect(a.check(n, "https://other.example.com/mcp")).toBe("bad");
    now += 30_000;
    expect(b.check(n, resource)).toBe("stale");
    expect(a.issue(resource)).not.toBe(n);
    now += 30_000;
    expect(b.check(n, resource)).toBe("bad");
    for (const junk of [undefined, 42, "", "x".repeat(65), "zz.short", `${n}x`]) expect(a.check(junk, resource)).toBe("bad");
  });

  it("the verifier asks for the nonce only of an otherwise valid proof, does not remember a refused proof's jti, and says when the nonce is stale", async () => {
    let now = Date.now();
    const nonces = new DpopNonces({ windowSeconds: 60, now: () => now });
    const v = new DpopVerifier({ now: () => now });
    const k = await newKey();
    const token = "header.payload.signature";
    const at = (p: string) => v.verify({ proof: p, method: "POST", url: resource, accessToken: token, jkt: k.jkt, nonces });
    const iat = () => Math.floor(now / 1000);
    // Wrong URL: the proof's own error, not a nonce request.
    expect(await at(await proof(k, "POST", "https://elsewhere.example/mcp", token, undefined, iat()))).toMatchObject({ ok: false, error: { code: "invalid_dpop_proof" } });
    const noNonce = await proof(k, "POST", resource, token, undefined, iat());
    expect(await at(noNonce)).toMatchObject({ ok: false, error: { code: "use_dpop_nonce" } });
    expect(v.replayEntries).toBe(0);
    const n = nonces.issue(resource);
    expect(await at(await proof(k, "POST", resource, token, n, iat()))).toEqual({ ok: true });
    now += 60_000;
    expect(await at(await proof(k, "POST", resource, token, n, iat()))).toEqual({ ok: true, staleNonce: true });
    now += 60_000;
    expect(await at(await proof(k, "POST", resource, token, n, iat()))).toMatchObject({ ok: false, error: { code: "use_dpop_nonce" } });
  });
});
