import { decodeBatch, ingestDecisions, MAX_BATCH_BYTES } from "@/lib/decisions/ingest";
import { AppError } from "@/lib/errors";
import { agentApi } from "@/lib/http/agent-api";
import { readRawBody } from "@/lib/http/body";

// POST /api/v1/agent/decisions - a batch of decisions (NDJSON, gzip allowed), idempotent by id: good lines stored, bad ones quarantined
export const POST = agentApi({}, async ({ db, agent, req }) => {
  const type = req.headers.get("content-type") ?? "";
  if (!/^application\/(x-ndjson|jsonl|ndjson)\b/.test(type)) throw new AppError("unsupported_media_type", "Send decisions as application/x-ndjson");
  const raw = await readRawBody(req, MAX_BATCH_BYTES);
  return ingestDecisions(db, agent, decodeBatch(raw, req.headers.get("content-encoding")));
});
