/**
 * lib/enforcement/dpop.ts against hand-built proofs (jose SignJWT): every
 * RFC 9449 §4.3 check refuses on its own, the right proof passes once.
 */
import { randomUUID } from "node:crypto";
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT, type JWK } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { accessTokenHash, challenges, checkSender, DpopVerifier, MAX_DPOP_PROOF_BYTES, readCredentials, stepUpChallenge, type Credentials } from "@/lib/enforcement/dpop";

const URL_ = "https://mcp.example.com/tickets";
const TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln";
let priv: CryptoKey;
let pub: JWK;
let jkt: string;
let otherPriv: CryptoKey;
let otherPub: JWK;
let now = Date.UTC(2026, 0, 1);

async function proof(over: { htm?: string; htu?: string; iat?: number; jti?: string; ath?: string | null; typ?: string; key?: CryptoKey; jwk?: JWK; alg?: string } = {}): Promise<string> {
  const claims: Record<string, unknown> = { htm: over.htm ?? "POST", htu: over.htu ?? URL_, iat: over.iat ?? Math.floor(now / 1000), jti: over.jti ?? randomUUID() };
  if (over.ath !== null) claims.ath = over.ath ?? accessTokenHash(TOKEN);
  return new SignJWT(claims).setProtectedHeader({ alg: over.alg ?? "ES256", typ: over.typ ?? "dpop+jwt", jwk: over.jwk ?? pub }).sign(over.key ?? priv);
}

const verifier = () => new DpopVerifier({ now: () => now });
const input = (p: string, over: Partial<{ method: string; url: string; accessToken: string; jkt: string }> = {}) => ({ proof: p, method: "POST", url: URL_, accessToken: TOKEN, jkt, ...over });
const description = (r: { ok: boolean; error?: { description: string } }) => (r.ok ? "ok" : r.error!.description);

beforeAll(async () => {
  const k = await generateKeyPair("ES256");
  priv = k.privateKey;
  pub = await exportJWK(k.publicKey);
  jkt = await calculateJwkThumbprint(pub, "sha256");
  const o = await generateKeyPair("ES256");
  otherPriv = o.privateKey;
  otherPub = await exportJWK(o.publicKey);
});

describe("DpopVerifier", () => {
  it("accepts the right proof once; the same jti again is a replay", async () => {
    const v = verifier();
    const p = await proof();
    expect(await v.verify(input(p))).toEqual({ ok: true });
    expect(description(await v.verify(input(p)))).toMatch(/already used/);
  });

  it("htu compares without query and fragment, after normalization", async () => {
    const v = verifier();
    expect((await v.verify(input(await proof({ htu: "HTTPS://MCP.example.com:443/tickets?x=1#f" })))).ok).toBe(true);
    expect(description(await v.verify(input(await proof({ htu: "https://mcp.example.com/other" }))))).toMatch(/another URL/);
    expect(description(await v.verify(input(await proof({ htu: "http://mcp.example.com/tickets" }))))).toMatch(/another URL/);
  });

  it("refuses another method, a stale or future iat, a wrong ath, another key, a missing ath", async () => {
    const v = verifier();
    expect(description(await v.verify(input(await proof({ htm: "GET" }))))).toMatch(/another HTTP method/);
    expect(description(await v.verify(input(await proof({ iat: Math.floor(now / 1000) - 61 }))))).toMatch(/iat/);
    expect(description(await v.verify(input(await proof({ iat: Math.floor(now / 1000) + 61 }))))).toMatch(/iat/);
    expect(description(await v.verify(input(await proof({ ath: accessTokenHash("another.token.x") }))))).toMatch(/ath/);
    expect(description(await v.verify(input(await proof({ ath: null }))))).toMatch(/ath/);
    // A valid proof by another key: the token is bound to the first key.
    expect(description(await v.verify(input(await proof({ key: otherPriv, jwk: otherPub }))))).toMatch(/another key/);
    // A header key that did not sign it.
    expect(description(await v.verify(input(await proof({ key: otherPriv, jwk: pub }))))).toMatch(/signature/);
  });

  it("refuses a wrong typ, HMAC, a private jwk, a key of another type", async () => {
    const v = verifier();
    expect(description(await v.verify(input(await proof({ typ: "JWT" }))))).toMatch(/dpop\+jwt/);
    const hs = await new SignJWT({ htm: "POST", htu: URL_, iat: Math.floor(now / 1000), jti: "x", ath: accessTokenHash(TOKEN) })
      .setProtectedHeader({ alg: "HS256", typ: "dpop+jwt", jwk: { kty: "oct", k: "c2VjcmV0" } as unknown as JWK })
      .sign(new TextEncoder().encode("secret-secret-secret-secret-secret"));
    expect(description(await v.verify(input(hs)))).toMatch(/algorithm/);
    const withD = { ...pub, d: "c2VjcmV0" };
    expect(description(await v.verify(input(await proof({ jwk: withD }))))).toMatch(/not a public key/);
    const ed = await generateKeyPair("EdDSA");
    expect(description(await v.verify(input(await proof({ key: ed.privateKey, alg: "EdDSA", jwk: pub }))))).toMatch(/does not fit/);
    // An Ed25519 key of its own is fine (the token is bound to another key, though).
    expect(description(await v.verify(input(await proof({ key: ed.privateKey, alg: "EdDSA", jwk: await exportJWK(ed.publicKey) }))))).toMatch(/another key/);
    expect(description(await v.verify(input("a.b")))).toMatch(/compact JWS/);
    expect(description(await v.verify(input("x".repeat(MAX_DPOP_PROOF_BYTES + 1))))).toMatch(/too long/);
  });

  it("the replay cache is bounded: full of live jtis it refuses (fail closed), and forgets jtis once their iat left the window", async () => {
    const v = new DpopVerifier({ now: () => now, maxReplayEntries: 2 });
    expect((await v.verify(input(await proof()))).ok).toBe(true);
    expect((await v.verify(input(await proof()))).ok).toBe(true);
    expect(description(await v.verify(input(await proof())))).toMatch(/replay cache is full/);
    const saved = now;
    now += 61_000;
    expect((await v.verify(input(await proof()))).ok).toBe(true);
    expect(v.replayEntries).toBe(1);
    now = saved;
  });
});

describe("readCredentials and checkSender", () => {
  const raw = (...pairs: string[]) => pairs;
  it("reads Bearer and DPoP; refuses two DPoP headers and an oversized one", () => {
    expect(readCredentials(`DPoP ${TOKEN}`, raw("DPoP", "p"))).toEqual({ ok: true, credentials: { scheme: "DPoP", token: TOKEN, proof: "p" } });
    expect(readCredentials(`Bearer ${TOKEN}`, [])).toEqual({ ok: true, credentials: { scheme: "Bearer", token: TOKEN, proof: null } });
    expect(readCredentials(`DPoP ${TOKEN}`, raw("dpop", "a", "DPoP", "b"))).toMatchObject({ ok: false, error: { code: "invalid_dpop_proof" } });
    expect(readCredentials(`DPoP ${TOKEN}`, raw("DPoP", "x".repeat(MAX_DPOP_PROOF_BYTES + 1)))).toMatchObject({ ok: false, error: { code: "invalid_dpop_proof" } });
    expect(readCredentials(`Basic ${TOKEN}`, [])).toMatchObject({ ok: false, error: { code: "invalid_token" } });
  });

  it("per mode: a bound token as Bearer is refused everywhere; required refuses plain bearer; off refuses the DPoP scheme", async () => {
    const v = verifier();
    const server = (dpop?: "allowed" | "required") => ({ resourceUri: URL_, scopes: ["a"], ...(dpop ? { dpop } : {}) });
    const bearer: Credentials = { scheme: "Bearer", token: TOKEN, proof: null };
    expect(await checkSender(v, server(), bearer, undefined, "POST")).toEqual({ ok: true });
    expect(await checkSender(v, server("allowed"), bearer, undefined, "POST")).toEqual({ ok: true });
    expect(await checkSender(v, server("required"), bearer, undefined, "POST")).toMatchObject({ ok: false, error: { code: "invalid_token" } });
    for (const mode of [undefined, "allowed", "required"] as const) expect(await checkSender(v, server(mode), bearer, jkt, "POST")).toMatchObject({ ok: false, error: { code: "invalid_token" } });
    const dpop: Credentials = { scheme: "DPoP", token: TOKEN, proof: await proof() };
    expect(await checkSender(v, server(), dpop, jkt, "POST")).toMatchObject({ ok: false, error: { code: "invalid_token" } });
    expect(await checkSender(v, server("allowed"), { ...dpop, proof: null }, jkt, "POST")).toMatchObject({ ok: false, error: { code: "invalid_dpop_proof" } });
    expect(await checkSender(v, server("allowed"), dpop, undefined, "POST")).toMatchObject({ ok: false, error: { code: "invalid_token" } });
    expect(await checkSender(v, server("required"), dpop, jkt, "POST")).toEqual({ ok: true });
  });

  it("challenges: off is Bearer alone; allowed adds DPoP algs; required is one DPoP challenge with resource_metadata", () => {
    const bearer = (e?: { code: string }) => `Bearer resource_metadata="m"${e ? `, error="${e.code}"` : ""}`;
    const s = (dpop?: "allowed" | "required") => ({ resourceUri: URL_, scopes: ["a"], ...(dpop ? { dpop } : {}) });
    expect(challenges(s(), bearer)).toBe('Bearer resource_metadata="m"');
    expect(challenges(s("allowed"), bearer)).toEqual(['Bearer resource_metadata="m"', 'DPoP algs="ES256 ES384 EdDSA Ed25519 RS256 PS256"']);
    const proofErr = { code: "invalid_dpop_proof", description: "x" };
    expect(challenges(s("allowed"), bearer, proofErr, true)).toEqual([
      'Bearer resource_metadata="m"',
      'DPoP algs="ES256 ES384 EdDSA Ed25519 RS256 PS256", error="invalid_dpop_proof", error_description="x"',
    ]);
    expect(stepUpChallenge('Bearer error="insufficient_scope", scope="b"', true)).toBe('DPoP error="insufficient_scope", scope="b", algs="ES256 ES384 EdDSA Ed25519 RS256 PS256"');
    expect(stepUpChallenge('Bearer error="insufficient_scope", scope="b"', false)).toBe('Bearer error="insufficient_scope", scope="b"');
    expect(challenges(s("required"), bearer)).toBe(
      'DPoP resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/tickets", scope="a", algs="ES256 ES384 EdDSA Ed25519 RS256 PS256"',
    );
  });
});
