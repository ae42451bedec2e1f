import type { NextRequest } from "next/server";
import { AppError } from "@/lib/errors";

/**
 * Reads a JSON body, stopping as soon as it passes `maxBytes` (a chunked body
 * has no content-length to trust). An empty body reads as `{}`.
 */
export async function readJsonBody(req: NextRequest, maxBytes: number): Promise<unknown> {
  const limit = maxBytes >= 1024 * 1024 ? `${maxBytes / 1024 / 1024} MiB` : `${maxBytes / 1024} KiB`;
  const tooLarge = () => new AppError("payload_too_large", `The body must be at most ${limit}`);
  const declared = Number(req.headers.get("content-length") ?? "0");
  if (declared > maxBytes) throw tooLarge();
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
  if (size === 0) return {};
  const type = req.headers.get("content-type") ?? "";
  if (!type.includes("application/json")) throw new AppError("unsupported_media_type", "Send the body as application/json");
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new AppError("invalid_json", "The body is not valid JSON");
  }
}
