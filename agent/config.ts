import { existsSync, readFileSync } from "node:fs";
import { hostname } from "node:os";
import path from "node:path";
import type { JWK } from "jose";
import { z } from "zod";
import { parseEgressAllow } from "@/lib/net/egress";

export const AGENT_VERSION = "0.1.0";
/** Where an enrolled agent keeps its key (mode 0600). */
export const KEY_FILE = "agent-key.json";

export interface AgentConfig {
  controlPlaneUrl: string;
  enrollmentToken: string | null;
  agentKey: string | null;
  /** The fleet the agent belongs to, when known up front (else from its enrollment). */
  fleetId: string | null;
  name: string;
  host: string;
  port: number;
  dataDir: string;
  /** Pinned bundle-signing public keys by key id. */
  keys: Record<string, JWK>;
  waitSeconds: number;
  /** How old the bundle in force may get without a confirmation from the control plane before every call is refused. */
  maxBundleAgeSeconds: number;
  /** Origins (scheme://host[:port]) clients reach the agent at through a proxy; empty: the Host header names it. */
  publicOrigins: string[];
  /** The session-binding key shared by replicas (else one kept in the data dir). */
  sessionKey: Buffer | null;
  /** Largest |now − iat| of a DPoP proof, in seconds (default 60; lib/enforcement/dpop.ts). */
  dpopIatWindowSeconds?: number;
  /** What egress may reach beyond public addresses: `loopback`, `private`, CIDRs (lib/net/agent.ts; unset: loopback only when the control plane is on loopback). */
  egressAllow?: string;
  /** The DPoP nonce key shared by replicas behind one address (else a random one per process: each replica accepts only its own nonces; lib/enforcement/dpop.ts). */
  dpopNonceKey?: Buffer | null;
}

export type ConfigResult = { ok: true; config: AgentConfig } | { ok: false; errors: string[] };

const FLAGS: Record<string, string> = {
  "--control-plane": "MANDATE_CONTROL_PLANE_URL",
  "--enrollment-token": "MANDATE_ENROLLMENT_TOKEN",
  "--agent-key": "MANDATE_AGENT_KEY",
  "--fleet-id": "MANDATE_FLEET_ID",
  "--name": "MANDATE_AGENT_NAME",
  "--host": "MANDATE_LISTEN_HOST",
  "--port": "MANDATE_LISTEN_PORT",
  "--data-dir": "MANDATE_DATA_DIR",
  "--keys": "MANDATE_BUNDLE_KEYS",
  "--wait": "MANDATE_WAIT_SECONDS",
  "--max-bundle-age": "MANDATE_MAX_BUNDLE_AGE",
  "--public-origin": "MANDATE_PUBLIC_ORIGIN",
  "--session-key": "MANDATE_SESSION_KEY",
  "--dpop-iat-window": "MANDATE_DPOP_IAT_WINDOW",
  "--egress-allow": "MANDATE_AGENT_EGRESS_ALLOW",
  "--dpop-nonce-key": "MANDATE_DPOP_NONCE_KEY",
};

export const USAGE = `Usage: mandate-agent [flags]   (each flag also reads from its environment variable)
${Object.entries(FLAGS)
  .map(([f, e]) => `  ${f.padEnd(20)} ${e}`)
  .join("\n")}
  --keys takes a JWKS as JSON ({"keys":[…]}) or the path of a file holding one.
  --max-bundle-age (default 24h; 1m to 30d): how old the bundle in force may get, counted from its signed
    creation time or the control plane's last confirmation (a long poll answered), before every call is refused.
  --public-origin (repeatable, or comma separated): https://mcp.example.com, the origin clients reach the agent at
    through a proxy; without it the Host header names the origin.
  --session-key: base64 of at least 32 random bytes, the same on every replica behind one address
    (default: one generated into the data dir).
  --dpop-iat-window (seconds, 5 to 300, default 60): how far a DPoP proof's iat may be from the agent's clock.
  --egress-allow: what the agent's outbound requests (issuers, token endpoints, upstreams) may reach beyond public
    addresses, comma separated: loopback, private (RFC 1918, CGNAT, unique-local) and CIDRs; cloud metadata only by
    its own /32. Unset: loopback when the control plane is on loopback, else public addresses only.
  --dpop-nonce-key: base64 of at least 32 random bytes, the same on every replica behind one address (DPoP nonces).`;

const jwkSchema = z.looseObject({ kty: z.literal("OKP"), crv: z.literal("Ed25519"), x: z.string().min(1), kid: z.string().min(1) });
const jwksSchema = z.object({ keys: z.array(jwkSchema).min(1, "must hold at least one key") });

const schema = z
  .object({
    MANDATE_CONTROL_PLANE_URL: z.url({ protocol: /^https?$/, error: (i) => (i.input === undefined ? "is required" : "must be an http(s) URL") }).transform((u) => u.replace(/\/+$/, "")),
    MANDATE_ENROLLMENT_TOKEN: z
      .string()
      .regex(/^mde_\S+$/, "must be an enrollment token (mde_…)")
      .optional(),
    MANDATE_AGENT_KEY: z
      .string()
      .regex(/^mda_\S+$/, "must be an agent key (mda_…)")
      .optional(),
    MANDATE_FLEET_ID: z.string().min(1).optional(),
    MANDATE_AGENT_NAME: z
      .string()
      .trim()
      .min(1)
      .max(120)
      .default(hostname().slice(0, 120) || "agent"),
    MANDATE_LISTEN_HOST: z.string().min(1).default("127.0.0.1"),
    MANDATE_LISTEN_PORT: z.coerce.number().int().min(0).max(65535).default(8080),
    MANDATE_DATA_DIR: z.string().min(1).default(".agent-data"),
    MANDATE_BUNDLE_KEYS: z.string({ error: "is required (a JWKS as JSON or a file path)" }).min(1),
    MANDATE_WAIT_SECONDS: z.coerce.number().int().min(0).max(60).default(30),
    MANDATE_MAX_BUNDLE_AGE: z
      .string()
      .default("24h")
      .transform((v, ctx) => {
        const seconds = durationSeconds(v);
        if (seconds === null) ctx.addIssue({ code: "custom", message: "must be a duration from 1m to 30d, such as 90m, 24h or 7d (a bare number is seconds)" });
        return seconds ?? 0;
      }),
    MANDATE_PUBLIC_ORIGIN: z
      .string()
      .default("")
      .transform((v, ctx) => {
        const out: string[] = [];
        for (const raw of v
          .split(",")
          .map((x) => x.trim())
          .filter(Boolean)) {
          const origin = publicOrigin(raw);
          if (origin) out.push(origin);
          else ctx.addIssue({ code: "custom", message: `${raw} is not an origin (https://host[:port], http only for localhost)` });
        }
        return [...new Set(out)];
      }),
    MANDATE_DPOP_IAT_WINDOW: z.coerce.number().int().min(5).max(300).default(60),
    MANDATE_AGENT_EGRESS_ALLOW: z
      .string()
      .optional()
      .superRefine((v, ctx) => {
        for (const problem of parseEgressAllow(v).problems) ctx.addIssue({ code: "custom", message: problem });
      }),
    MANDATE_DPOP_NONCE_KEY: z
      .string()
      .optional()
      .transform((v, ctx) => {
        if (v === undefined) return null;
        const key = Buffer.from(v, "base64");
        if (key.length < 32 || !/^[A-Za-z0-9+/_-]+=*$/.test(v)) ctx.addIssue({ code: "custom", message: "must be base64 of at least 32 bytes" });
        return key;
      }),
    MANDATE_SESSION_KEY: z
      .string()
      .optional()
      .transform((v, ctx) => {
        if (v === undefined) return null;
        const key = Buffer.from(v, "base64");
        if (key.length < 32 || !/^[A-Za-z0-9+/_-]+=*$/.test(v)) ctx.addIssue({ code: "custom", message: "must be base64 of at least 32 bytes" });
        return key;
      }),
  })
  .strip();

/** Reads flags (`--name value` or `--name=value`) over the environment; collects every problem. */
export function loadConfig(argv: string[], env: Record<string, string | undefined>): ConfigResult {
  const errors: string[] = [];
  const merged: Record<string, string | undefined> = {};
  for (const e of Object.values(FLAGS)) if (env[e] !== undefined && env[e] !== "") merged[e] = env[e];
  let originFlags = 0;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf("=");
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const name = FLAGS[flag];
    if (!name) {
      errors.push(`unknown flag ${flag}`);
      continue;
    }
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined) errors.push(`${flag} needs a value`);
    // --public-origin may be given more than once.
    else if (name === "MANDATE_PUBLIC_ORIGIN" && originFlags++ > 0) merged[name] = `${merged[name]},${value}`;
    else merged[name] = value;
  }
  const parsed = schema.safeParse(merged);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const key = String(issue.path[0] ?? "");
      const flag = Object.entries(FLAGS).find(([, e]) => e === key)?.[0];
      errors.push(`${key}${flag ? ` (${flag})` : ""}: ${issue.message}`);
    }
  }
  let keys: Record<string, JWK> = {};
  const rawKeys = merged.MANDATE_BUNDLE_KEYS;
  if (rawKeys) {
    const r = parseKeys(rawKeys);
    if (typeof r === "string") errors.push(`MANDATE_BUNDLE_KEYS (--keys): ${r}`);
    else keys = r;
  }
  if (parsed.success) {
    const v = parsed.data;
    const stored = existsSync(path.join(v.MANDATE_DATA_DIR, KEY_FILE));
    if (!v.MANDATE_ENROLLMENT_TOKEN && !v.MANDATE_AGENT_KEY && !stored) {
      errors.push(`give MANDATE_ENROLLMENT_TOKEN (--enrollment-token) or MANDATE_AGENT_KEY (--agent-key); no stored key in ${v.MANDATE_DATA_DIR}`);
    }
    if (v.MANDATE_ENROLLMENT_TOKEN && v.MANDATE_AGENT_KEY) errors.push("give an enrollment token or an agent key, not both");
    if (!errors.length) {
      return {
        ok: true,
        config: {
          controlPlaneUrl: v.MANDATE_CONTROL_PLANE_URL,
          enrollmentToken: v.MANDATE_ENROLLMENT_TOKEN ?? null,
          agentKey: v.MANDATE_AGENT_KEY ?? null,
          fleetId: v.MANDATE_FLEET_ID ?? null,
          name: v.MANDATE_AGENT_NAME,
          host: v.MANDATE_LISTEN_HOST,
          port: v.MANDATE_LISTEN_PORT,
          dataDir: path.resolve(v.MANDATE_DATA_DIR),
          keys,
          waitSeconds: v.MANDATE_WAIT_SECONDS,
          maxBundleAgeSeconds: v.MANDATE_MAX_BUNDLE_AGE,
          publicOrigins: v.MANDATE_PUBLIC_ORIGIN,
          sessionKey: v.MANDATE_SESSION_KEY,
          dpopIatWindowSeconds: v.MANDATE_DPOP_IAT_WINDOW,
          egressAllow: v.MANDATE_AGENT_EGRESS_ALLOW,
          dpopNonceKey: v.MANDATE_DPOP_NONCE_KEY,
        },
      };
    }
  }
  return { ok: false, errors };
}

/** The origin of a public address (scheme://host[:port], no path), or null. */
function publicOrigin(raw: string): string | null {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return null;
  }
  const loopback = ["localhost", "127.0.0.1", "[::1]"].includes(u.hostname);
  if (u.protocol !== "https:" && !(u.protocol === "http:" && loopback)) return null;
  if (u.username || u.password || u.search || u.hash || (u.pathname !== "/" && u.pathname !== "")) return null;
  return u.origin;
}

/** `90`, `90s`, `15m`, `24h`, `7d` → seconds, within 1 minute and 30 days; null otherwise. */
export function durationSeconds(raw: string): number | null {
  const m = /^(\d{1,9})([smhd]?)$/.exec(raw.trim());
  if (!m) return null;
  const seconds = Number(m[1]) * { "": 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as "" | "s" | "m" | "h" | "d"];
  return seconds >= 60 && seconds <= 30 * 86400 ? seconds : null;
}

/** A JWKS as JSON, or the path of a file holding one → keys by kid; or the problem. */
export function parseKeys(raw: string): Record<string, JWK> | string {
  let text = raw.trim();
  if (!text.startsWith("{")) {
    try {
      text = readFileSync(text, "utf8");
    } catch (err) {
      return `cannot read key file ${raw}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`;
    }
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return "is not valid JSON";
  }
  const r = jwksSchema.safeParse(json);
  if (!r.success) return r.error.issues.map((i) => `${i.path.join(".") || "jwks"}: ${i.message}`).join("; ");
  const keys: Record<string, JWK> = {};
  for (const k of r.data.keys) {
    if (keys[k.kid]) return `key id ${k.kid} appears twice`;
    if ("d" in k) return `key ${k.kid} is a private key; pin public keys only`;
    keys[k.kid] = k as JWK;
  }
  return keys;
}
