import "server-only";
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import path from "node:path";
import { z } from "zod";
import { parseTrustedProxies } from "@/lib/auth/client-address";
import { parseEgressAllow } from "@/lib/net/egress";

const kekIdPattern = /^[A-Za-z0-9_.-]{1,64}$/;

/** A key-encryption key: 32 bytes that never enter the database, with the id recorded beside what it seals. */
export interface EnvKek {
  id: string;
  key: Buffer;
}

/** Parses MANDATE_KEK_PREVIOUS (`id:base64,id:base64`); returns the keys and every problem found. */
export function parsePreviousKeks(raw: string | undefined, activeId: string): { keys: EnvKek[]; problems: string[] } {
  const keys: EnvKek[] = [];
  const problems: string[] = [];
  if (!raw?.trim()) return { keys, problems };
  for (const [i, part] of raw.split(",").entries()) {
    const item = part.trim();
    const at = item.indexOf(":");
    const id = at > 0 ? item.slice(0, at) : "";
    const key = at > 0 ? Buffer.from(item.slice(at + 1), "base64") : Buffer.alloc(0);
    const label = `entry ${i + 1}${id ? ` ("${id}")` : ""}`;
    if (!id) problems.push(`${label}: expected id:base64`);
    else if (!kekIdPattern.test(id)) problems.push(`${label}: the id must be 1-64 letters, digits, '.', '_' or '-'`);
    else if (id === activeId) problems.push(`${label}: the id is the active MANDATE_KEK_ID; a previous key needs its own id`);
    else if (keys.some((k) => k.id === id)) problems.push(`${label}: the id appears twice`);
    else if (key.length !== 32) problems.push(`${label}: the key must decode to exactly 32 bytes (got ${key.length})`);
    else keys.push({ id, key });
  }
  return { keys, problems };
}

const bool = z
  .enum(["true", "false", "1", "0"])
  .optional()
  .transform((v) => v === "true" || v === "1");

/** Every environment variable the control plane reads, parsed once at start. */
export const envSchema = z
  .object({
    DATABASE_URL: z
      .string()
      .regex(/^postgres(ql)?:\/\//, "must be a postgres:// URL")
      .optional()
      .describe("PostgreSQL URL. Unset: embedded PGlite in MANDATE_DATA_DIR."),
    MANDATE_DATA_DIR: z.string().default(".data").describe("Embedded database and local state directory."),
    NEXTAUTH_URL: z.url().default("http://localhost:3000").describe("Public origin of the dashboard."),
    NEXTAUTH_SECRET: z.string().min(32, "must be at least 32 characters").optional().describe("Session signing secret. Unset on the embedded database: generated once into the data dir."),
    MANDATE_OWNER_EMAIL: z.email().optional().describe("E-mail of the first owner, created on first start."),
    MANDATE_OWNER_PASSWORD: z.string().min(12, "must be at least 12 characters").optional().describe("Password of the first owner. Unset: a one-time password is printed once."),
    OIDC_ISSUER: z.url().optional().describe("Issuer of a generic OIDC provider for admin sign-in."),
    OIDC_CLIENT_ID: z.string().min(1).optional(),
    OIDC_CLIENT_SECRET: z.string().min(1).optional(),
    OIDC_NAME: z.string().default("Single sign-on"),
    MANDATE_OIDC_AUTO_PROVISION: bool.describe("Create unknown OIDC users as members without access."),
    MANDATE_KEK: z
      .string()
      .optional()
      .describe("Key-encryption key: 32 random bytes, base64 or base64url. Seals signing keys (and vault data keys). Unset on the embedded database: generated once into the data dir."),
    MANDATE_KEK_ID: z.string().regex(kekIdPattern, "must be 1-64 letters, digits, '.', '_' or '-'").default("kek-1").describe("Id of MANDATE_KEK, recorded beside everything it seals"),
    MANDATE_KEK_PREVIOUS: z
      .string()
      .optional()
      .describe("Previous key-encryption keys during a KEK rotation: `id:base64,id:base64` (32 bytes each). Data sealed with them stays readable and is rewrapped into MANDATE_KEK at start."),
    MANDATE_EGRESS_ALLOW: z
      .string()
      .optional()
      .describe(
        "Addresses the control plane may fetch beyond public ones (catalogue import, client metadata): comma-separated `loopback`, `private` or CIDRs. Unset: loopback on the embedded database, nothing otherwise.",
      ),
    MANDATE_LOGIN_MAX_FAILURES: z.coerce.number().int().min(1).max(100).default(5).describe("Password sign-in attempts allowed per account per window, from any address (one client address gets 4×)."),
    MANDATE_LOGIN_WINDOW_SECONDS: z.coerce.number().int().min(10).max(86400).default(900).describe("Length of the sign-in throttling window."),
    MANDATE_TRUSTED_PROXIES: z
      .string()
      .max(4096)
      .optional()
      .describe(
        "Reverse proxies in front of the dashboard (comma-separated IPs or CIDRs). Only a request whose TCP peer is one of them has its X-Forwarded-For read (the right-most entry that is not a trusted proxy). Unset: the TCP peer is the client.",
      ),
    MANDATE_OIDC_EMAIL_LINKING: z
      .enum(["off", "passwordless", "any"])
      .default("passwordless")
      .describe(
        "Whether an SSO sign-in with a verified e-mail (email_verified: true) may link to an existing user not yet linked to an SSO identity: off (never; only issuer+subject), passwordless (default: only users with no local password, e.g. invited ones), any (also users with a password, which is then removed). Owners only with MANDATE_OIDC_LINK_OWNERS.",
      ),
    MANDATE_OIDC_LINK_OWNERS: bool.describe("Let SSO link by e-mail to an owner account too (default false: owners link only by issuer and subject)."),
    MANDATE_INVITATION_TTL_HOURS: z.coerce.number().int().min(1).max(720).default(72).describe("How long an invitation link stays valid."),
    MANDATE_METRICS_TOKEN: z
      .string()
      .min(32, "must be at least 32 characters")
      .optional()
      .describe("Bearer token a Prometheus scraper sends to GET /api/v1/metrics (owners and auditors can read it signed in)."),
  })
  .superRefine((v, ctx) => {
    const oidc = [v.OIDC_ISSUER, v.OIDC_CLIENT_ID, v.OIDC_CLIENT_SECRET];
    if (oidc.some(Boolean) && !oidc.every(Boolean)) {
      ctx.addIssue({ code: "custom", path: ["OIDC_ISSUER"], message: "OIDC_ISSUER, OIDC_CLIENT_ID and OIDC_CLIENT_SECRET go together" });
    }
    if (v.DATABASE_URL && !v.NEXTAUTH_SECRET) {
      ctx.addIssue({ code: "custom", path: ["NEXTAUTH_SECRET"], message: "is required when DATABASE_URL is set" });
    }
    if (v.DATABASE_URL && !v.MANDATE_KEK) {
      ctx.addIssue({ code: "custom", path: ["MANDATE_KEK"], message: "is required when DATABASE_URL is set (32 random bytes, base64)" });
    }
    if (v.MANDATE_KEK && Buffer.from(v.MANDATE_KEK, "base64").length !== 32) {
      ctx.addIssue({ code: "custom", path: ["MANDATE_KEK"], message: "must decode to exactly 32 bytes" });
    }
    for (const problem of parsePreviousKeks(v.MANDATE_KEK_PREVIOUS, v.MANDATE_KEK_ID).problems) {
      ctx.addIssue({ code: "custom", path: ["MANDATE_KEK_PREVIOUS"], message: problem });
    }
    for (const problem of parseEgressAllow(v.MANDATE_EGRESS_ALLOW).problems) {
      ctx.addIssue({ code: "custom", path: ["MANDATE_EGRESS_ALLOW"], message: problem });
    }
    for (const problem of parseTrustedProxies(v.MANDATE_TRUSTED_PROXIES).problems) {
      ctx.addIssue({ code: "custom", path: ["MANDATE_TRUSTED_PROXIES"], message: problem });
    }
    if (v.MANDATE_OWNER_PASSWORD && !v.MANDATE_OWNER_EMAIL) {
      ctx.addIssue({ code: "custom", path: ["MANDATE_OWNER_EMAIL"], message: "is required with MANDATE_OWNER_PASSWORD" });
    }
  });

export type Env = Readonly<
  z.infer<typeof envSchema> & {
    NEXTAUTH_SECRET: string;
    /** The active key-encryption key: everything new is sealed with it. */
    kek: EnvKek & { previous: readonly EnvKek[] };
    /** The active key first, then the previous ones: what sealed data is opened with (by its kekId). */
    keyring: readonly EnvKek[];
  }
>;

let cached: Env | undefined;

/** Parses the environment once; throws a readable list of every problem. */
export function getEnv(): Env {
  if (cached) return cached;
  const parsed = envSchema.safeParse(process.env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  - ${i.path.join(".") || "(env)"}: ${i.message}`);
    throw new Error(`Invalid environment:\n${lines.join("\n")}`);
  }
  const v = parsed.data;
  const previous = parsePreviousKeks(v.MANDATE_KEK_PREVIOUS, v.MANDATE_KEK_ID).keys;
  const kek = { id: v.MANDATE_KEK_ID, key: Buffer.from(v.MANDATE_KEK ?? embeddedSecret(v.MANDATE_DATA_DIR, "kek"), "base64"), previous };
  const keyring = [{ id: kek.id, key: kek.key }, ...previous];
  cached = Object.freeze({ ...v, NEXTAUTH_SECRET: v.NEXTAUTH_SECRET ?? embeddedSecret(v.MANDATE_DATA_DIR, "auth-secret"), kek, keyring });
  return cached;
}

// The embedded default must start with no configuration, so it keeps its own
// random session secret beside the database it belongs to.
function embeddedSecret(dataDir: string, name: "auth-secret" | "kek"): string {
  const file = path.resolve(dataDir, name);
  if (existsSync(file)) return readFileSync(file, "utf8").trim();
  mkdirSync(path.dirname(file), { recursive: true });
  const secret = randomBytes(32).toString("base64url");
  writeFileSync(file, secret, { mode: 0o600, flag: "wx" });
  return secret;
}
