import { BlockList, isIP } from "node:net";

/**
 * The header carrying the TCP peer address of a request. Route handlers in
 * Next.js 16 see headers only (no socket, no `req.ip`), and Next fills
 * `x-forwarded-for` from the socket only when the client sent none, so that
 * header is the client's to choose. This one is written by the server itself:
 * `installPeerAddressStamp` (lib/auth/peer-stamp.ts, installed from
 * instrumentation.ts) overwrites it with `socket.remoteAddress` on every
 * request before Next.js sees the request, so a client cannot set it.
 */
export const PEER_ADDRESS_HEADER = "x-mandate-peer-address";

/** How many `X-Forwarded-For` entries are looked at, from the right. */
const MAX_FORWARDED_HOPS = 16;

type HeaderBag = Headers | Record<string, string | string[] | undefined> | undefined;

function header(headers: HeaderBag, name: string): string | undefined {
  if (!headers) return undefined;
  if (headers instanceof Headers) return headers.get(name) ?? undefined;
  const v = headers[name];
  return Array.isArray(v) ? v.join(",") : v;
}

/** An IP address in canonical text (IPv4-mapped IPv6 as plain IPv4), or null when `raw` is not one. */
export function normalizeAddress(raw: string | undefined | null): string | null {
  if (!raw) return null;
  let a = raw.trim();
  if (a.length > 64) return null;
  if (a.startsWith("[") && a.endsWith("]")) a = a.slice(1, -1);
  const v4mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(a);
  if (v4mapped) a = v4mapped[1]!;
  const family = isIP(a);
  if (family === 4) return a;
  if (family === 6) return a.toLowerCase();
  return null;
}

/** Parses a comma-separated list of addresses and CIDR ranges (IPv4 and IPv6); returns the set and every problem found. */
export function parseTrustedProxies(raw: string | undefined): { list: BlockList | null; problems: string[] } {
  const problems: string[] = [];
  if (!raw?.trim()) return { list: null, problems };
  const list = new BlockList();
  for (const [i, part] of raw.split(",").entries()) {
    const item = part.trim();
    if (!item) continue;
    const [addrRaw, prefixRaw, extra] = item.split("/");
    const addr = normalizeAddress(addrRaw);
    const family = addr ? isIP(addr) : 0;
    const max = family === 6 ? 128 : 32;
    const prefix = prefixRaw === undefined ? max : /^\d{1,3}$/.test(prefixRaw) ? Number(prefixRaw) : NaN;
    if (!addr || extra !== undefined) problems.push(`entry ${i + 1} ("${item.slice(0, 60)}"): expected an IP address or CIDR range such as 10.0.0.0/8`);
    else if (!(prefix >= 0 && prefix <= max)) problems.push(`entry ${i + 1} ("${item}"): the prefix length must be 0-${max}`);
    else list.addSubnet(addr, prefix, family === 6 ? "ipv6" : "ipv4");
  }
  return { list, problems };
}

function trusted(list: BlockList, addr: string): boolean {
  return list.check(addr, isIP(addr) === 6 ? "ipv6" : "ipv4");
}

/**
 * The address a request came from, for throttling: the TCP peer, unless the
 * peer is a proxy the operator declared trusted; then the right-most
 * `X-Forwarded-For` entry that is not itself a trusted proxy (entries to its
 * left were written by the client and prove nothing). `"unknown"` when the
 * server did not stamp the peer address (all such requests share one bucket).
 */
export function clientAddress(headers: HeaderBag, trustedProxies: BlockList | null): string {
  const peer = normalizeAddress(header(headers, PEER_ADDRESS_HEADER));
  if (!peer) return "unknown";
  if (!trustedProxies || !trusted(trustedProxies, peer)) return peer;
  const hops = (header(headers, "x-forwarded-for") ?? "").split(",").slice(-MAX_FORWARDED_HOPS);
  let client = peer;
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i]!.trim();
    if (!hop) continue;
    const addr = normalizeAddress(hop);
    // A trusted proxy writes addresses; anything else means the chain cannot be read past here.
    if (!addr) return client;
    client = addr;
    if (!trusted(trustedProxies, addr)) return addr;
  }
  return client;
}
