"use client";

/** An error answered by the admin API, with per-field issues when it has them. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly issues: { path: string; message: string }[] = [],
  ) {
    super(message);
  }
  /** The first message for a form field path (e.g. "resourceUri", "issuers.0.issuer"). */
  field(path: string): string | undefined {
    return this.issues.find((i) => i.path === path || i.path.startsWith(`${path}.`))?.message;
  }
}

interface ErrorBody {
  error?: { code: string; message: string; issues?: { path: string; message: string }[] };
}
/** RFC 9457 problem details (application/problem+json), with field errors as `errors: [{ pointer | path, detail | message }]`. */
interface ProblemBody {
  type?: string;
  title?: string;
  detail?: string;
  errors?: { pointer?: string; path?: string; detail?: string; message?: string }[];
}

/** The error of an answer: Mandate's `{ error }` shape, or RFC 9457 problem details (e.g. from a proxy in front of it). */
export function errorOf(status: number, data: (ErrorBody & ProblemBody) | null): ApiError {
  if (data?.error) return new ApiError(status, data.error.code ?? "error", data.error.message ?? `Request failed (${status})`, data.error.issues);
  if (data && (typeof data.detail === "string" || typeof data.title === "string")) {
    const issues = Array.isArray(data.errors)
      ? data.errors.map((e) => ({ path: e.path ?? (e.pointer ?? "").replace(/^#?\//, "").replaceAll("/", "."), message: String(e.detail ?? e.message ?? "") }))
      : [];
    const code = typeof data.type === "string" && data.type !== "about:blank" ? (data.type.split("/").pop() ?? "error") : "error";
    return new ApiError(status, code, String(data.detail ?? data.title), issues);
  }
  return new ApiError(status, "error", `Request failed (${status})`);
}

/** Calls the admin API with the session cookie; JSON in, JSON out, errors as ApiError. */
export async function apiFetch<T>(path: string, init: { method?: string; body?: unknown } = {}): Promise<T> {
  const res = await fetch(`/api/v1/admin${path}`, {
    method: init.method ?? "GET",
    headers: init.body !== undefined ? { "content-type": "application/json" } : {},
    body: init.body !== undefined ? JSON.stringify(init.body) : undefined,
    credentials: "same-origin",
  });
  if (res.status === 204) return undefined as T;
  const data = (await res.json().catch(() => null)) as (ErrorBody & ProblemBody) | null;
  if (!res.ok) {
    if (res.status === 401 && typeof window !== "undefined") window.location.href = `/login?callbackUrl=${encodeURIComponent(window.location.pathname)}`;
    throw errorOf(res.status, data);
  }
  return data as T;
}

export const qs = (params: Record<string, string | number | undefined | null>) => {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") s.set(k, String(v));
  const out = s.toString();
  return out ? `?${out}` : "";
};

/** React Query keys, one factory per domain, so invalidation stays consistent. */
export const keys = {
  me: ["me"] as const,
  tenants: {
    all: ["tenants"] as const,
    list: (p: object) => ["tenants", "list", p] as const,
    byId: (id: string) => ["tenants", id] as const,
    members: (id: string) => ["tenants", id, "members"] as const,
  },
  servers: {
    all: ["servers"] as const,
    list: (p: object) => ["servers", "list", p] as const,
    byId: (id: string) => ["servers", id] as const,
    scopes: (id: string) => ["servers", id, "scopes"] as const,
  },
  tools: { all: ["tools"] as const, list: (serverId: string, p: object) => ["tools", serverId, p] as const, byId: (id: string) => ["tools", "one", id] as const },
  trail: { list: (p: object) => ["trail", p] as const },
  tokens: { all: ["tokens"] as const },
  users: { list: (p: object) => ["users", p] as const },
  fleets: {
    all: ["fleets"] as const,
    byId: (id: string) => ["fleets", id] as const,
    draft: (id: string) => ["fleets", id, "draft"] as const,
    bundles: (id: string) => ["fleets", id, "bundles"] as const,
    diff: (id: string, from: number, to: number) => ["fleets", id, "diff", from, to] as const,
    tokens: (id: string) => ["fleets", id, "enrollment-tokens"] as const,
  },
  policies: {
    all: ["policies"] as const,
    list: (p: object) => ["policies", "list", p] as const,
    byId: (id: string) => ["policies", id] as const,
    check: (body: object) => ["policies", "check", body] as const,
    // Under the server's key, so catalogue changes that invalidate the server refresh it too.
    schema: (serverId: string) => ["servers", serverId, "cedar-schema"] as const,
  },
  policyTests: { all: ["policyTests"] as const, list: (p: object) => ["policyTests", "list", p] as const },
  simulator: {
    // Under "fleets", so invalidating fleets refreshes the revision choices too.
    fleets: ["fleets", "simulator"] as const,
    bundles: (fleetId: string) => ["fleets", fleetId, "bundles", "simulator"] as const,
  },
};
