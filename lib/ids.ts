import { uuidv7 } from "uuidv7";

export const idPrefixes = {
  user: "usr",
  tenant: "ten",
  server: "srv",
  tool: "tool",
  toolVersion: "tv",
  scopeMapping: "smap",
  token: "tok",
  invitation: "inv",
  event: "evt",
  policy: "pol",
  policyTest: "ptest",
  fleet: "flt",
  agent: "agt",
  bundle: "bnd",
  enrollment: "enr",
  vaultEntry: "vlt",
  vaultVersion: "vver",
  client: "ocl",
  grant: "grt",
  revocation: "rvk",
  mask: "msk",
  tenantIssuer: "tis",
  quarantine: "dqr",
  approval: "apr",
  approverGroup: "apg",
  connection: "con",
  connectRequest: "cnr",
} as const;

/** A prefixed, time-ordered id such as `srv_0190f0c4…`: readable in logs and sortable. */
export function newId(kind: keyof typeof idPrefixes): string {
  return `${idPrefixes[kind]}_${uuidv7().replaceAll("-", "")}`;
}

/** True when `id` has the shape of an id of this kind (cheap pre-check before a lookup). */
export function isId(kind: keyof typeof idPrefixes, id: string): boolean {
  return new RegExp(`^${idPrefixes[kind]}_[0-9a-f]{32}$`).test(id);
}
