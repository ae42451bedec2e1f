/**
 * Canonical resource URIs (RFC 8707 §2, MCP authorization "Canonical Server
 * URI"): absolute, https (http only on loopback), no fragment, no query, no
 * user info, lowercase scheme and host, no default port, no trailing slash.
 * Pure: shared by the control plane and the agent.
 */
export type UriCheck = { ok: true; uri: string } | { ok: false; error: string };

const loopback = new Set(["localhost", "127.0.0.1", "[::1]"]);

function parseAbsolute(input: string): URL | string {
  const raw = input.trim();
  if (!raw) return "is required";
  if (raw.length > 2048) return "must be at most 2048 characters";
  if (/\s/.test(raw)) return "must not contain spaces";
  if (!/^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.test(raw)) return "must be an absolute URI (https://host/path)";
  try {
    return new URL(raw);
  } catch {
    return "is not a valid URI";
  }
}

function checkOrigin(u: URL, allowHttpOnLoopback: boolean): string | undefined {
  if (u.protocol !== "https:" && !(u.protocol === "http:" && allowHttpOnLoopback && loopback.has(u.hostname))) {
    return "must use https (http is allowed for localhost only)";
  }
  if (!u.hostname) return "must name a host";
  if (u.username || u.password) return "must not contain user info";
  return undefined;
}

export function canonicalResourceUri(input: string): UriCheck {
  const u = parseAbsolute(input);
  if (typeof u === "string") return { ok: false, error: u };
  if (input.includes("#")) return { ok: false, error: "must not contain a fragment (#…)" };
  if (u.search || input.includes("?")) return { ok: false, error: "must not contain a query (?…)" };
  const bad = checkOrigin(u, true);
  if (bad) return { ok: false, error: bad };
  const path = u.pathname.replace(/\/+$/, "");
  return { ok: true, uri: `${u.protocol}//${u.host}${path}` };
}

/** An upstream or issuer URL: absolute http(s), no fragment, no credentials in it. */
export function checkHttpUrl(input: string, { httpsOnly = false } = {}): UriCheck {
  const u = parseAbsolute(input);
  if (typeof u === "string") return { ok: false, error: u };
  if (input.includes("#")) return { ok: false, error: "must not contain a fragment (#…)" };
  if (u.protocol !== "https:" && u.protocol !== "http:") return { ok: false, error: "must be an http or https URL" };
  if (httpsOnly) {
    const bad = checkOrigin(u, true);
    if (bad) return { ok: false, error: bad };
  }
  if (u.username || u.password) return { ok: false, error: "must not contain credentials (store them in the vault)" };
  return { ok: true, uri: u.toString() };
}

/** The path at which an agent serves a resource (its URI's path, "/" for the root). */
export function resourcePath(canonicalUri: string): string {
  return new URL(canonicalUri).pathname || "/";
}

/** RFC 9728 §3.1: the path-inserted well-known URL of a resource's metadata. */
export function protectedResourceMetadataUrl(canonicalUri: string): string {
  const u = new URL(canonicalUri);
  const path = u.pathname === "/" ? "" : u.pathname;
  return `${u.protocol}//${u.host}/.well-known/oauth-protected-resource${path}`;
}
