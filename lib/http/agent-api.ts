import "server-only";
import { randomUUID } from "node:crypto";
import type { NextRequest } from "next/server";
import type { z } from "zod";
import type { Db, DbHandle } from "@/db/client";
import type { Agent } from "@/db/schema";
import { authenticateAgent, touchAgent } from "@/lib/agents/service";
import { AGENT_KEY_PREFIX } from "@/lib/agents/keys";
import { getDbHandle } from "@/lib/db";
import { AppError } from "@/lib/errors";
import { errorResponse } from "./api";
import { readJsonBody } from "./body";

/** Agents send bundles' worth of state at most; 1 MiB is plenty. */
export const MAX_AGENT_BODY_BYTES = 1024 * 1024;
export const AGENT_REALM = 'Bearer realm="mandate-agent"';

export const agentJson = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store", ...headers } });

/** The agent of the request's `Authorization: Bearer mda_…`, or 401. */
async function authenticate(req: NextRequest, db: Db): Promise<Agent> {
  const m = /^Bearer\s+(\S+)$/i.exec(req.headers.get("authorization") ?? "");
  const agent = m?.[1]?.startsWith(AGENT_KEY_PREFIX) ? await authenticateAgent(db, m[1]) : null;
  if (!agent) throw new AppError("unauthenticated", m ? "The agent key is invalid or revoked" : "Send the agent key as Authorization: Bearer mda_…");
  return agent;
}

type Infer<T> = T extends z.ZodType ? z.infer<T> : undefined;

interface Spec<B extends z.ZodType | undefined, Q extends z.ZodType | undefined, A extends boolean> {
  /** false for the one unauthenticated call (enrollment). Default true. */
  auth?: A;
  body?: B;
  query?: Q;
  /** Status for a successful answer with a body (default 200). */
  status?: number;
}

interface Call<B, Q, A extends boolean> {
  agent: A extends false ? null : Agent;
  handle: DbHandle;
  db: Db;
  body: Infer<B>;
  query: Infer<Q>;
  req: NextRequest;
  requestId: string;
}

/**
 * Wraps an agent API handler: agent-key authentication (marking the agent
 * seen), body cap, zod parsing and the API's one error shape. 401 answers
 * carry `WWW-Authenticate: Bearer realm="mandate-agent"`.
 */
export function agentApi<B extends z.ZodType | undefined = undefined, Q extends z.ZodType | undefined = undefined, A extends boolean = true>(
  spec: Spec<B, Q, A>,
  fn: (call: Call<B, Q, A>) => Promise<unknown>,
) {
  return async (req: NextRequest): Promise<Response> => {
    const requestId = req.headers.get("x-request-id")?.slice(0, 64) || randomUUID();
    try {
      const handle = await getDbHandle();
      const agent = spec.auth === false ? null : await authenticate(req, handle.db);
      if (agent) await touchAgent(handle.db, agent.id);
      const body = (spec.body ? spec.body.parse(await readJsonBody(req, MAX_AGENT_BODY_BYTES)) : undefined) as Infer<B>;
      const query = (spec.query ? spec.query.parse(Object.fromEntries(req.nextUrl.searchParams)) : undefined) as Infer<Q>;
      const out = await fn({ agent: agent as Call<B, Q, A>["agent"], handle, db: handle.db, body, query, req, requestId });
      if (out instanceof Response) {
        out.headers.set("x-request-id", requestId);
        return out;
      }
      if (out === undefined) return new Response(null, { status: 204, headers: { "x-request-id": requestId, "cache-control": "no-store" } });
      return agentJson(spec.status ?? 200, out, { "x-request-id": requestId });
    } catch (err) {
      const res = errorResponse(err, requestId);
      if (res.status === 401) res.headers.set("www-authenticate", AGENT_REALM);
      return res;
    }
  };
}
