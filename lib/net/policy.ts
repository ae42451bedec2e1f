import "server-only";
import { parseEgressAllow, type EgressPolicy } from "./egress";

/**
 * The control plane's egress policy: MANDATE_EGRESS_ALLOW when set; else the
 * embedded default (no DATABASE_URL, `npm start`) allows loopback, for the
 * sandbox; else only public addresses. The variable is validated with the
 * rest of the environment at start (lib/env.ts lists its problems); it is read
 * here alone so that domain services also run where the full control-plane
 * environment is absent (scripts, tests). A malformed entry allows nothing.
 */
export function egressPolicy(): EgressPolicy {
  const raw = process.env.MANDATE_EGRESS_ALLOW;
  if (raw !== undefined) return parseEgressAllow(raw).policy;
  return { loopback: !process.env.DATABASE_URL, cidrs: [] };
}
