import { bundleQuery, serveBundle } from "@/lib/agents/serve-bundle";
import { agentApi } from "@/lib/http/agent-api";

// A long poll holds the request for up to 60 s: never cache, never pre-render.
export const dynamic = "force-dynamic";

// GET /api/v1/agent/bundle - the fleet's active signed bundle (ETag, If-None-Match, ?wait= long poll)
export const GET = agentApi({ query: bundleQuery }, ({ handle, agent, query, req }) => serveBundle({ handle, agent, query, ifNoneMatch: req.headers.get("if-none-match"), signal: req.signal }));
