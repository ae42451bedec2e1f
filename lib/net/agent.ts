/**
 * The agent's egress: every outbound request of the data plane (issuer
 * metadata and JWKS, token endpoints, RFC 7009 revocation, the upstream
 * catalogue check, the control plane) through the one guard of
 * lib/net/egress.ts. Pure: no Next.js, no database, no environment.
 *
 * Policy: public addresses; loopback, private ranges and CIDRs only as the
 * operator allows them (`--egress-allow`, the same syntax as the control
 * plane's MANDATE_EGRESS_ALLOW); cloud metadata addresses never unless named
 * by their own /32 or /128. The control plane's origin (host and port, named
 * by the operator) may be any address but a metadata one. Hosts named in a bundle (issuers, token
 * endpoints, upstreams) get no such exemption: a tenant admin who sets an
 * upstream or issuer URL must not reach the agent's own network.
 */
import { createEgressFetch, egressFetch, hostPort, parseEgressAllow, type EgressPolicy } from "./egress";

/** What `fetch`-taking code of the agent is given. */
export type FetchLike = (url: string | URL, init?: RequestInit) => Promise<Response>;

/** Answers of issuers, token and revocation endpoints and upstream catalogue pages: small. */
export const AGENT_MAX_ANSWER_BYTES = 1024 * 1024;
/** Per request to an issuer, token endpoint or upstream (the whole exchange). */
export const AGENT_TIMEOUT_MS = 10_000;
/** A signed bundle can be large; the control plane's answers are read up to this. */
export const CONTROL_PLANE_MAX_ANSWER_BYTES = 64 * 1024 * 1024;
/** Long polls and batches are bounded by their callers' own signals; this is the outer bound. */
export const CONTROL_PLANE_TIMEOUT_MS = 10 * 60_000;

function hostOf(url: string): { host: string; origin: string } | null {
  try {
    const u = new URL(url);
    return { host: u.hostname.toLowerCase().replace(/^\[|\]$/g, ""), origin: hostPort(u.hostname, u.port, u.protocol) };
  } catch {
    return null;
  }
}

/**
 * The agent's policy from its `--egress-allow` setting. Unset: loopback only
 * when the control plane itself is on a loopback host (a development or test
 * setup, as the control plane's embedded default), else public addresses
 * only. Returns every problem of the setting.
 */
export function agentEgressPolicy(allow: string | undefined, controlPlaneUrl: string): { policy: EgressPolicy; problems: string[] } {
  const cp = hostOf(controlPlaneUrl);
  const hosts = cp ? [cp.origin] : [];
  const cpHost = cp?.host;
  if (allow !== undefined) {
    const { policy, problems } = parseEgressAllow(allow);
    return { policy: Object.freeze({ ...policy, hosts }), problems };
  }
  const loopback = cpHost === "localhost" || cpHost === "::1" || /^127\./.test(cpHost ?? "");
  return { policy: Object.freeze({ loopback, cidrs: [], hosts }), problems: [] };
}

/** The agent's guarded fetches: one for destinations a bundle names, one for the control plane. */
export interface AgentEgress {
  policy: EgressPolicy;
  /** Issuers, JWKS, token endpoints, revocation endpoints, upstream catalogue listing: 10 s, 1 MiB, no redirects. */
  fetch: FetchLike;
  /** The control plane (its host is exempt from the address check, metadata aside): 10 min outer bound, 64 MiB, no redirects. */
  controlPlane: FetchLike;
}

export function agentEgress(policy: EgressPolicy): AgentEgress {
  return {
    policy,
    fetch: createEgressFetch({ policy, timeoutMs: AGENT_TIMEOUT_MS, maxBytes: AGENT_MAX_ANSWER_BYTES }),
    controlPlane: (url, init) => egressFetch(url, init ?? {}, { policy, timeoutMs: CONTROL_PLANE_TIMEOUT_MS, maxBytes: CONTROL_PLANE_MAX_ANSWER_BYTES }),
  };
}

/**
 * The default of agent modules built without an egress (tests, benches):
 * public addresses and loopback, nothing private, no metadata; the running
 * agent always passes its own (agent/main.ts).
 */
export const DEFAULT_AGENT_EGRESS: AgentEgress = agentEgress(Object.freeze({ loopback: true, cidrs: [] }));
