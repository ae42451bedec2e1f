import { diffArrays } from "diff";

export type DiffLine = { op: "same" | "add" | "del"; text: string };

// Tool definitions come from upstream servers, which may be hostile: a changed
// definition of a quarter of the size limit rendered to ~26,000 lines, and the
// old n×m table exhausted the heap of whoever opened the tool's page. The diff
// is now Myers (jsdiff) with an edit-length and time budget, on capped input,
// with a capped output; past the caps the reader gets the first part and
// downloads both versions.
/** Bounds of the tool-version diff (per side unless said otherwise). */
export const DIFF_LIMITS = {
  /** Lines of each rendered version that are compared. */
  maxLines: 2000,
  /** Bytes of each rendered version that are compared. */
  maxBytes: 256 * 1024,
  /** Characters of one line kept (the rest is cut with an ellipsis). */
  maxLineChars: 500,
  /** Most edits (added + removed lines) Myers looks for before giving up. */
  maxEditLength: 1000,
  /** Wall time of one diff before giving up. */
  timeoutMs: 200,
  /** Lines compared again when the full comparison gave up. */
  fallbackLines: 200,
  /** JSON nested deeper than this is shown compact (pretty-printing indents grow with depth). */
  maxPrettyDepth: 32,
} as const;

/** Why the diff shows less than both whole versions, and how much there was. */
export interface DiffTruncation {
  reason: "too_long" | "too_different";
  beforeLines: number;
  afterLines: number;
  /** Lines of each version the shown diff covers. */
  comparedLines: number;
}

export interface ToolDiff {
  lines: DiffLine[];
  truncated: DiffTruncation | null;
}

/** The first `maxLines` lines within `maxBytes`, each cut to `maxLineChars`; and how many lines the text has. */
function headLines(text: string, maxLines: number): { lines: string[]; total: number } {
  const lines: string[] = [];
  let bytes = 0;
  let start = 0;
  let total = 0;
  while (start <= text.length) {
    let end = text.indexOf("\n", start);
    if (end < 0) end = text.length;
    total++;
    if (lines.length < maxLines && bytes < DIFF_LIMITS.maxBytes) {
      const line = end - start > DIFF_LIMITS.maxLineChars ? `${text.slice(start, start + DIFF_LIMITS.maxLineChars)}…` : text.slice(start, end);
      lines.push(line);
      bytes += line.length + 1;
    }
    start = end + 1;
  }
  return { lines, total };
}

function myers(a: string[], b: string[], budget: { maxEditLength: number; timeout: number }): DiffLine[] | undefined {
  const changes = diffArrays(a, b, budget);
  if (!changes) return undefined;
  const out: DiffLine[] = [];
  for (const c of changes) {
    const op = c.added ? "add" : c.removed ? "del" : "same";
    for (const text of c.value) out.push({ op, text });
  }
  return out;
}

/**
 * Line diff of two rendered tool versions within DIFF_LIMITS: linear space,
 * bounded time, at most 2 × maxLines lines out. When a version is longer than
 * the caps, or the two differ by more than maxEditLength lines, the diff
 * covers the first lines only and says so.
 */
export function diffToolVersions(before: string, after: string): ToolDiff {
  const a = headLines(before, DIFF_LIMITS.maxLines);
  const b = headLines(after, DIFF_LIMITS.maxLines);
  const cut = a.lines.length < a.total || b.lines.length < b.total;
  const full = myers(a.lines, b.lines, { maxEditLength: DIFF_LIMITS.maxEditLength, timeout: DIFF_LIMITS.timeoutMs });
  if (full) {
    return { lines: full, truncated: cut ? { reason: "too_long", beforeLines: a.total, afterLines: b.total, comparedLines: Math.max(a.lines.length, b.lines.length) } : null };
  }
  // Too different to align within the budget: align the beginnings (at most 2 × fallbackLines edits, always within budget).
  const n = DIFF_LIMITS.fallbackLines;
  const head = myers(a.lines.slice(0, n), b.lines.slice(0, n), { maxEditLength: 2 * n, timeout: DIFF_LIMITS.timeoutMs }) ?? [
    ...a.lines.slice(0, n).map((text) => ({ op: "del" as const, text })),
    ...b.lines.slice(0, n).map((text) => ({ op: "add" as const, text })),
  ];
  return { lines: head, truncated: { reason: "too_different", beforeLines: a.total, afterLines: b.total, comparedLines: n } };
}

/** Line diff of two texts (bounded: see diffToolVersions; the lines only). */
export function diffLines(before: string, after: string): DiffLine[] {
  return diffToolVersions(before, after).lines;
}

/** JSON.stringify(value, null, 2), but compact below DIFF_LIMITS.maxPrettyDepth: indentation cannot grow with a hostile depth. */
function pretty(value: unknown): string {
  if (jsonDeeperThan(value, DIFF_LIMITS.maxPrettyDepth)) {
    try {
      return JSON.stringify(value) ?? "null";
    } catch {
      return "(not shown: nested too deeply to render)";
    }
  }
  return JSON.stringify(value ?? null, null, 2);
}

function jsonDeeperThan(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length) {
    const [v, d] = stack.pop()!;
    if (!v || typeof v !== "object") continue;
    if (d >= max) return true;
    for (const c of Array.isArray(v) ? v : Object.values(v as Record<string, unknown>)) if (c && typeof c === "object") stack.push([c, d + 1]);
  }
  return false;
}

/** A readable, stable rendering of a tool version for review. */
export function renderToolVersion(v: { title: string | null; description: string; inputSchema: unknown; outputSchema: unknown; annotations: unknown; definition?: unknown }): string {
  return [
    `title: ${v.title ?? ""}`,
    "description:",
    ...v.description.split("\n").map((l) => `  ${l}`),
    "annotations:",
    ...pretty(v.annotations ?? {})
      .split("\n")
      .map((l) => `  ${l}`),
    "inputSchema:",
    ...pretty(v.inputSchema)
      .split("\n")
      .map((l) => `  ${l}`),
    ...(v.outputSchema
      ? [
          "outputSchema:",
          ...pretty(v.outputSchema)
            .split("\n")
            .map((l) => `  ${l}`),
        ]
      : []),
    // Resources, templates and prompts: the definition as listed (URI, name, MIME type, arguments), which their hash covers.
    ...(v.definition
      ? [
          "definition:",
          ...pretty(v.definition)
            .split("\n")
            .map((l) => `  ${l}`),
        ]
      : []),
  ].join("\n");
}
