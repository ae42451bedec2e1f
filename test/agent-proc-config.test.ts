import { generateKeyPairSync } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JWK } from "jose";
import { loadConfig } from "@/agent/config";
import { backoff } from "@/agent/timing";
import { challenge401, challenge403 } from "@/agent/server";
import type { BundleServer } from "@/lib/enforcement/bundle";

let dir: string;
const pub = { ...(generateKeyPairSync("ed25519").publicKey.export({ format: "jwk" }) as JWK), kid: "k1" };
const jwks = JSON.stringify({ keys: [pub] });

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "mandate-agent-config-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe("agent config", () => {
  it("reads flags over the environment, with defaults", () => {
    const r = loadConfig(["--port=9000", "--wait", "5"], {
      MANDATE_CONTROL_PLANE_URL: "https://cp.example/",
      MANDATE_AGENT_KEY: "mda_x.y",
      MANDATE_BUNDLE_KEYS: jwks,
      MANDATE_LISTEN_PORT: "1",
      MANDATE_DATA_DIR: dir,
    });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.config).toMatchObject({ controlPlaneUrl: "https://cp.example", agentKey: "mda_x.y", enrollmentToken: null, port: 9000, waitSeconds: 5, host: "127.0.0.1", dataDir: dir });
    expect(r.config.keys).toEqual({ k1: pub });
  });

  it("reads the pinned keys from a file", async () => {
    const file = path.join(dir, "keys.json");
    await writeFile(file, jwks);
    const r = loadConfig(["--keys", file, "--control-plane", "http://localhost:3000", "--enrollment-token", "mde_abc.def", "--data-dir", dir], {});
    expect(r.ok && r.config.keys.k1).toEqual(pub);
  });

  it("collects every problem at once", () => {
    const r = loadConfig(["--port", "99999", "--bogus", "--wait"], { MANDATE_CONTROL_PLANE_URL: "ftp://x", MANDATE_AGENT_KEY: "nope" });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors.join("\n")).toMatch(/unknown flag --bogus/);
    expect(r.errors.join("\n")).toMatch(/--wait needs a value/);
    expect(r.errors.join("\n")).toMatch(/MANDATE_LISTEN_PORT \(--port\)/);
    expect(r.errors.join("\n")).toMatch(/MANDATE_CONTROL_PLANE_URL/);
    expect(r.errors.join("\n")).toMatch(/MANDATE_AGENT_KEY.*agent key/);
    expect(r.errors.join("\n")).toMatch(/MANDATE_BUNDLE_KEYS.*required/);
  });

  it("refuses private keys, non-Ed25519 keys, unreadable files, and no credential", () => {
    const priv = { ...(generateKeyPairSync("ed25519").privateKey.export({ format: "jwk" }) as JWK), kid: "p" };
    const base = { MANDATE_CONTROL_PLANE_URL: "http://localhost:3000", MANDATE_DATA_DIR: path.join(dir, "empty") };
    const bad = (keys: string) => {
      const r = loadConfig([], { ...base, MANDATE_AGENT_KEY: "mda_a.b", MANDATE_BUNDLE_KEYS: keys });
      return r.ok ? "ok" : r.errors.join("\n");
    };
    expect(bad(JSON.stringify({ keys: [priv] }))).toMatch(/private key/);
    expect(bad(JSON.stringify({ keys: [{ kty: "RSA", n: "x", e: "AQAB", kid: "r" }] }))).toMatch(/MANDATE_BUNDLE_KEYS/);
    expect(bad(path.join(dir, "missing.json"))).toMatch(/cannot read key file/);
    expect(bad("{nope")).toMatch(/not valid JSON/);
    const none = loadConfig([], { ...base, MANDATE_BUNDLE_KEYS: jwks });
    expect(!none.ok && none.errors.join("\n")).toMatch(/ENROLLMENT_TOKEN.*AGENT_KEY/);
  });
});

describe("challenges and backoff", () => {
  const server = { resourceUri: "https://mcp.example.com/tickets", scopes: ["a:read", "a:write"] } as BundleServer;
  it("formats 401 and 403 challenges per the MCP authorization spec", () => {
    expect(challenge401(server)).toBe('Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/tickets", scope="a:read a:write"');
    expect(challenge401({ ...server, scopes: [] }, { code: "invalid_token", description: 'bad "quote"' })).toBe(
      'Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/tickets", error="invalid_token", error_description="bad \\"quote\\""',
    );
    expect(challenge403(server, ["a:write", "admin"])).toBe(
      'Bearer error="insufficient_scope", scope="a:write admin", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/tickets"',
    );
  });
  it("backs off exponentially with jitter, capped", () => {
    for (let i = 0; i < 50; i++) {
      expect(backoff(0)).toBeGreaterThanOrEqual(250);
      expect(backoff(0)).toBeLessThanOrEqual(750);
      expect(backoff(20)).toBeLessThanOrEqual(45_000);
      expect(backoff(20)).toBeGreaterThanOrEqual(15_000);
    }
  });
});
