/**
 * The egress guard: every outbound HTTP request of the control plane
 * (catalogue import, client metadata, issuer discovery, JWKS) goes through
 * `egressFetch` or a fetch made by `createEgressFetch`. It resolves the host,
 * refuses private, loopback, link-local, unique-local, multicast, reserved
 * and cloud metadata addresses unless the operator allowed them, connects
 * only to the address it checked (the check is the socket's own DNS lookup,
 * and the connected peer is checked again), follows no redirect, and bounds
 * the time and the size of every answer. Its errors name what failed (refused
 * address, timeout, TLS, connection, HTTP status, size), never a peer's body.
 *
 * Pure enough for any process: node:dns, node:net and undici, no Next.js, no
 * database, no environment (the policy is passed in; see lib/net/policy.ts).
 */
import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from "node:dns";
import net from "node:net";
import { Agent, buildConnector, fetch as undiciFetch } from "undici";

/** What the operator allowed beyond public addresses. */
export interface EgressPolicy {
  /** 127.0.0.0/8 and ::1 (the embedded default, tests and the sandbox). */
  loopback: boolean;
  /** Extra ranges allowed (`10.0.0.0/8`, `fd12::/16`); a metadata address needs its own /32 or /128. */
  cidrs: readonly string[];
  /**
   * Origins as `host:port` (lowercase, IPv6 without brackets, the port always
   * written) the operator named itself (the agent's control plane): any
   * address they resolve to is allowed, except a cloud metadata address.
   * Another port of the same host is not exempt. Never an origin taken from
   * a bundle or a request.
   */
  hosts?: readonly string[];
}

export const DENY_ALL_PRIVATE: EgressPolicy = Object.freeze({ loopback: false, cidrs: [] });

/** Why a request did not happen or failed; `message` is safe to show and store (no body, no query, no credential). */
export class EgressError extends Error {
  constructor(
    readonly code: "bad_url" | "refused_address" | "timeout" | "tls" | "connect" | "dns" | "redirect" | "http_status" | "too_large" | "failed",
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = "EgressError";
  }
}

const METADATA = ["169.254.169.254", "fd00:ec2::254", "100.100.100.200", "169.254.170.2"];

// Ranges refused unless allowed, with the reason named in errors.
const REFUSED_V4: Array<[string, number, string]> = [
  ["0.0.0.0", 8, "unspecified"],
  ["10.0.0.0", 8, "private"],
  ["100.64.0.0", 10, "shared (CGNAT)"],
  ["127.0.0.0", 8, "loopback"],
  ["169.254.0.0", 16, "link-local"],
  ["172.16.0.0", 12, "private"],
  ["192.0.0.0", 24, "reserved"],
  ["192.0.2.0", 24, "reserved"],
  ["192.88.99.0", 24, "reserved"],
  ["192.168.0.0", 16, "private"],
  ["198.18.0.0", 15, "reserved"],
  ["198.51.100.0", 24, "reserved"],
  ["203.0.113.0", 24, "reserved"],
  ["224.0.0.0", 4, "multicast"],
  ["240.0.0.0", 4, "reserved"],
];
const REFUSED_V6: Array<[string, number, string]> = [
  ["::", 128, "unspecified"],
  ["::1", 128, "loopback"],
  ["100::", 64, "reserved"],
  ["2001:db8::", 32, "reserved"],
  ["fc00::", 7, "unique-local"],
  ["fe80::", 10, "link-local"],
  ["fec0::", 10, "site-local"],
  ["ff00::", 8, "multicast"],
];

function blockOf(ranges: Array<[string, number, string]>, type: "ipv4" | "ipv6"): Array<{ list: net.BlockList; reason: string }> {
  return ranges.map(([addr, prefix, reason]) => {
    const list = new net.BlockList();
    list.addSubnet(addr, prefix, type);
    return { list, reason };
  });
}
const refusedV4 = blockOf(REFUSED_V4, "ipv4");
const refusedV6 = blockOf(REFUSED_V6, "ipv6");

/** An IPv6 address that carries an IPv4 one (mapped ::ffff:0:0/96, NAT64 64:ff9b::/96, compatible ::/96) answers as that IPv4 address. */
function embeddedV4(ip: string): string | null {
  const lower = ip.toLowerCase();
  const dotted = /^(?:::ffff:|64:ff9b::|::)(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
  if (dotted?.[1] && net.isIPv4(dotted[1])) return dotted[1];
  const hex = /^(?:::ffff:|64:ff9b::|::)([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(lower);
  if (hex?.[1] && hex[2]) {
    const hi = parseInt(hex[1], 16);
    const lo = parseInt(hex[2], 16);
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  return null;
}

/** The IP as the family it really reaches: IPv4-in-IPv6 forms become IPv4. */
export function normalizeIp(ip: string): { ip: string; type: "ipv4" | "ipv6" } | null {
  const bare = ip.replace(/^\[|\]$/g, "").replace(/%.*$/, "");
  if (net.isIPv4(bare)) return { ip: bare, type: "ipv4" };
  if (!net.isIPv6(bare)) return null;
  const v4 = embeddedV4(bare);
  return v4 && net.isIPv4(v4) ? { ip: v4, type: "ipv4" } : { ip: bare, type: "ipv6" };
}

function sameIp(a: { ip: string; type: string }, b: string): boolean {
  const nb = normalizeIp(b);
  if (!nb || nb.type !== a.type) return false;
  const list = new net.BlockList();
  list.addAddress(nb.ip, nb.type);
  return list.check(a.ip, a.type as "ipv4" | "ipv6");
}

function allowedBy(policy: EgressPolicy, n: { ip: string; type: "ipv4" | "ipv6" }, metadata: boolean): boolean {
  for (const cidr of policy.cidrs) {
    const parsed = parseCidr(cidr);
    if (!parsed || parsed.type !== n.type) continue;
    if (metadata && parsed.prefix !== (n.type === "ipv4" ? 32 : 128)) continue;
    const list = new net.BlockList();
    list.addSubnet(parsed.ip, parsed.prefix, parsed.type);
    if (list.check(n.ip, n.type)) return true;
  }
  return false;
}

/**
 * Why the address must not be reached under this policy ("loopback",
 * "private", "metadata"…), or null when it may. Unparseable addresses are refused.
 */
export function refusedReason(ip: string, policy: EgressPolicy): string | null {
  const n = normalizeIp(ip);
  if (!n) return "not an IP address";
  if (METADATA.some((m) => sameIp(n, m))) return allowedBy(policy, n, true) ? null : "metadata";
  const hit = (n.type === "ipv4" ? refusedV4 : refusedV6).find((r) => r.list.check(n.ip, n.type));
  if (!hit) return null;
  if (hit.reason === "loopback" && policy.loopback) return null;
  return allowedBy(policy, n, false) ? null : hit.reason;
}

function parseCidr(raw: string): { ip: string; prefix: number; type: "ipv4" | "ipv6" } | null {
  const [addr = "", len, extra] = raw.trim().split("/");
  if (extra !== undefined) return null;
  const type = net.isIPv4(addr) ? "ipv4" : net.isIPv6(addr) ? "ipv6" : null;
  if (!type) return null;
  const max = type === "ipv4" ? 32 : 128;
  const prefix = len === undefined ? max : /^\d{1,3}$/.test(len) ? Number(len) : NaN;
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) return null;
  return { ip: addr, prefix, type };
}

/**
 * Parses an allow setting: a comma-separated list of `loopback`, `private`
 * (RFC 1918, CGNAT and unique-local) and CIDRs. Returns every problem found.
 */
export function parseEgressAllow(raw: string | undefined): { policy: EgressPolicy; problems: string[] } {
  const cidrs: string[] = [];
  const problems: string[] = [];
  let loopback = false;
  for (const item of (raw ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)) {
    if (item === "loopback") loopback = true;
    else if (item === "private") cidrs.push("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7");
    else if (parseCidr(item)) cidrs.push(item);
    else problems.push(`"${item.slice(0, 60)}" is neither loopback, private nor a CIDR (10.0.0.0/8, fd00::/8)`);
  }
  return { policy: Object.freeze({ loopback, cidrs: Object.freeze(cidrs) }), problems };
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

const bareHost = (hostname: string) => hostname.toLowerCase().replace(/^\[|\]$/g, "");
/** `host:port` of an origin, as `EgressPolicy.hosts` lists them. */
export function hostPort(hostname: string, port: string | number | undefined, protocol: string): string {
  return `${bareHost(hostname)}:${port ? Number(port) : protocol === "https:" ? 443 : 80}`;
}
/** The policy that applies to one origin: an operator-named one may reach any address but a metadata one. */
function policyForOrigin(origin: string, policy: EgressPolicy): EgressPolicy {
  return policy.hosts?.includes(origin) ? OPERATOR_HOST : policy;
}
/** At lookup time the port is unknown: a host with an operator-named origin is resolved unchecked, and its connection checked (with its port) once made. */
function policyForLookup(hostname: string, policy: EgressPolicy): EgressPolicy {
  const h = bareHost(hostname);
  return policy.hosts?.some((o) => o.slice(0, o.lastIndexOf(":")) === h) ? OPERATOR_HOST : policy;
}
/** Every address except cloud metadata ones (which need their own /32 or /128). */
const OPERATOR_HOST: EgressPolicy = Object.freeze({ loopback: true, cidrs: Object.freeze(["0.0.0.0/0", "::/0"]) });

/** A `dns.lookup` replacement for sockets: resolves, and fails when any address of the host is refused. */
export function guardedLookup(policy: EgressPolicy) {
  return (hostname: string, options: LookupOptions, callback: LookupCallback): void => {
    const effective = policyForLookup(hostname, policy);
    dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, "", 0);
      const list = addresses as LookupAddress[];
      if (list.length === 0) return callback(Object.assign(new Error("no address"), { code: "ENOTFOUND" }), "", 0);
      // Any refused answer refuses the host: a name that mixes public and internal addresses is not trusted.
      for (const a of list) {
        const reason = refusedReason(a.address, effective);
        if (reason) return callback(new EgressError("refused_address", `${hostname} resolves to a ${reason} address, which egress does not allow`) as NodeJS.ErrnoException, "", 0);
      }
      const first = list[0]!;
      if (options.all) callback(null, list);
      else callback(null, first.address, first.family);
    });
  };
}

/**
 * An undici `connect` function under the policy: the lookup checks every
 * address of the host, and the connected peer is checked again (DNS
 * rebinding between the two). For any undici dispatcher (`Agent`, `Pool`):
 * it runs once per new connection, never per request on a kept-alive one.
 */
export function guardedConnect(policy: EgressPolicy, timeoutMs = 10_000): buildConnector.connector {
  const base = buildConnector({ lookup: guardedLookup(policy), timeout: timeoutMs } as buildConnector.BuildOptions);
  return (opts, cb) =>
    base(opts, (err, socket) => {
      if (err || !socket) return cb(err ?? new Error("connect failed"), null);
      const reason = refusedReason(socket.remoteAddress ?? "", policyForOrigin(hostPort(opts.hostname, opts.port, opts.protocol), policy));
      if (reason) {
        socket.destroy();
        return cb(new EgressError("refused_address", `${opts.hostname} is a ${reason} address, which egress does not allow`), null);
      }
      cb(null, socket);
    });
}

const agents = new Map<string, Agent>();

/** One connection pool per policy: its lookup checks each address, and each connected peer is checked again. */
function agentFor(policy: EgressPolicy): Agent {
  const key = JSON.stringify([policy.loopback, policy.cidrs, policy.hosts ?? []]);
  let agent = agents.get(key);
  if (!agent) {
    agent = new Agent({ connect: guardedConnect(policy) });
    agents.set(key, agent);
  }
  return agent;
}

export interface EgressOptions {
  policy: EgressPolicy;
  /** Whole request, headers and body (default 10 000). */
  timeoutMs?: number;
  /** Largest answer body in bytes (default 1 MiB); a longer body errors while it is read. */
  maxBytes?: number;
  /** http: is refused except to a loopback host (default: allowed, the address check still applies). */
  requireHttps?: boolean;
}

/** The URL with its query values and userinfo removed: safe in errors and logs. */
function shown(u: URL): string {
  return `${u.protocol}//${u.host}${u.pathname}`;
}

/** Refuses a URL before any connection: scheme, credentials in it, and an IP literal host that the policy refuses. */
export function checkUrl(raw: string | URL, policy: EgressPolicy, requireHttps = false): URL {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new EgressError("bad_url", "the URL is not valid");
  }
  if (u.protocol !== "https:" && u.protocol !== "http:") throw new EgressError("bad_url", `${u.protocol} URLs are not fetched`);
  const literal = normalizeIp(u.hostname);
  const loopbackHost = u.hostname === "localhost" || (literal !== null && refusedReason(literal.ip, DENY_ALL_PRIVATE) === "loopback");
  if (requireHttps && u.protocol === "http:" && !loopbackHost) throw new EgressError("bad_url", `${shown(u)} is plain http; only https (or http to a loopback host) is fetched`);
  if (literal) {
    const reason = refusedReason(literal.ip, policyForOrigin(hostPort(u.hostname, u.port, u.protocol), policy));
    if (reason) throw new EgressError("refused_address", `${u.host} is a ${reason} address, which egress does not allow`);
  }
  return u;
}

function classify(err: unknown, u: URL, timedOut: boolean): EgressError {
  if (err instanceof EgressError) return err;
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof EgressError) return e;
    const code = String((e as { code?: unknown }).code ?? "");
    if (code === "ENOTFOUND" || code === "EAI_AGAIN") return new EgressError("dns", `${u.host} could not be resolved`);
    if (code === "ECONNREFUSED") return new EgressError("connect", `${u.host} refused the connection`);
    if (code === "UND_ERR_CONNECT_TIMEOUT") return new EgressError("timeout", `connecting to ${u.host} timed out`);
    if (/^(ERR_TLS|ERR_SSL|CERT_|UNABLE_TO|DEPTH_ZERO|SELF_SIGNED|HOSTNAME_MISMATCH|ERR_OSSL)/.test(code)) return new EgressError("tls", `TLS with ${u.host} failed (${code})`);
  }
  if (timedOut) return new EgressError("timeout", `${shown(u)} did not answer in time`);
  return new EgressError("failed", `the request to ${shown(u)} failed`);
}

/** Counts bytes through a body stream and errors past the cap. */
function capped(body: ReadableStream<Uint8Array>, maxBytes: number, u: URL): ReadableStream<Uint8Array> {
  let seen = 0;
  return body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        seen += chunk.byteLength;
        if (seen > maxBytes) controller.error(new EgressError("too_large", `the answer of ${shown(u)} is larger than ${maxBytes} bytes`));
        else controller.enqueue(chunk);
      },
    }),
  );
}

/**
 * A guarded fetch: the policy's address check, no redirects (a 3xx is an
 * error), a deadline over the whole exchange, a capped body. Non-2xx answers
 * are returned (the caller decides); their bodies are capped the same way.
 */
export async function egressFetch(url: string | URL, init: RequestInit, opts: EgressOptions): Promise<Response> {
  const u = checkUrl(url, opts.policy, opts.requireHttps);
  const timeout = AbortSignal.timeout(opts.timeoutMs ?? 10_000);
  const signal = init.signal ? AbortSignal.any([init.signal, timeout]) : timeout;
  let res: Awaited<ReturnType<typeof undiciFetch>>;
  try {
    res = await undiciFetch(u, { ...(init as Parameters<typeof undiciFetch>[1]), redirect: "manual", signal, dispatcher: agentFor(opts.policy) });
  } catch (err) {
    throw classify(err, u, timeout.aborted);
  }
  // 304 Not Modified is an answer (a conditional request's), not a redirect.
  if (res.status >= 300 && res.status < 400 && res.status !== 304) {
    await res.body?.cancel().catch(() => undefined);
    throw new EgressError("redirect", `${shown(u)} answered a redirect (HTTP ${res.status}), which is not followed`, res.status);
  }
  // 204, 205 and 304 carry no body (a Response with one would throw).
  const bodyless = res.status === 204 || res.status === 205 || res.status === 304;
  if (bodyless) await res.body?.cancel().catch(() => undefined);
  const body = res.body && !bodyless ? capped(res.body as ReadableStream<Uint8Array>, opts.maxBytes ?? 1024 * 1024, u) : null;
  // A global Response, so callers (and the MCP SDK) see the platform type; reading past the deadline aborts too.
  return new Response(body, { status: res.status, statusText: res.statusText, headers: new Headers([...res.headers]) });
}

/** A `fetch` for libraries that take one (the MCP SDK client): every request through the guard. */
export function createEgressFetch(opts: EgressOptions): (url: string | URL, init?: RequestInit) => Promise<Response> {
  return (url, init) => egressFetch(url, init ?? {}, opts);
}

/** Reads a guarded answer's body as text within its cap; an over-long body is a `too_large` EgressError. */
export async function readText(res: Response): Promise<string> {
  try {
    return await res.text();
  } catch (err) {
    if (err instanceof EgressError) throw err;
    const cause = (err as { cause?: unknown }).cause;
    if (cause instanceof EgressError) throw cause;
    const name = err instanceof Error ? err.name : "";
    if (name === "TimeoutError" || name === "AbortError") throw new EgressError("timeout", "the answer did not arrive in time");
    throw new EgressError("failed", "the answer could not be read");
  }
}
