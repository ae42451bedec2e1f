import { createHash } from "node:crypto";
import canonicalize from "canonicalize";

/** The parts of a tool definition that decide what a model is told and what it may send. */
export interface ToolDefinition {
  name: string;
  title?: string | null;
  description?: string | null;
  inputSchema: Record<string, unknown>;
  outputSchema?: Record<string, unknown> | null;
  annotations?: Record<string, unknown> | null;
}

/**
 * SHA-256 over the RFC 8785 canonical JSON of the tool's name, title,
 * description, input and output schema and annotations. Any change an
 * upstream makes to what the model reads or sends changes the hash; key
 * order and whitespace do not. Shared by the catalogue and the agent.
 */
export function toolHash(t: ToolDefinition): string {
  const canonical = canonicalize({
    name: t.name,
    title: t.title ?? null,
    description: t.description ?? "",
    inputSchema: t.inputSchema,
    outputSchema: t.outputSchema ?? null,
    annotations: t.annotations ?? {},
  });
  return `sha256:${createHash("sha256")
    .update(canonical ?? "")
    .digest("hex")}`;
}
