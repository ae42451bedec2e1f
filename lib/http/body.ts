import type { NextRequest } from "next/server";
import { AppError } from "@/lib/errors";

const human = (n: number) => (n >= 1024 * 1024 ? `${n / 1024 / 1024} MiB` : `${n / 1024} KiB`);

/**
 * Reads a body, stopping as soon as it passes `maxBytes` (a chunked body has
 * no content-length to trust).
 */
export async function readRawBody(req: NextRequest, maxBytes: number): Promise<Buffer> {
  const tooLarge = () => new AppError("payload_too_large", `The body must be at most ${human(maxBytes)}`);
  if (Number(req.headers.get("content-length") ?? "0") > maxBytes) throw tooLarge();
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (req.body) {
    const reader = req.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > maxBytes) {
        await reader.cancel().catch(() => {});
        throw tooLarge();
      }
      chunks.push(value);
    }
  }
  return Buffer.concat(chunks);
}

/** Reads a JSON body within `maxBytes`; an empty body reads as `{}`. */
export async function readJsonBody(req: NextRequest, maxBytes: number): Promise<unknown> {
  const raw = await readRawBody(req, maxBytes);
  if (raw.length === 0) return {};
  if (!(req.headers.get("content-type") ?? "").includes("application/json")) throw new AppError("unsupported_media_type", "Send the body as application/json");
  try {
    return JSON.parse(raw.toString("utf8"));
  } catch {
    throw new AppError("invalid_json", "The body is not valid JSON");
  }
}
