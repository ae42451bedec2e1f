/**
 * Parses text typed into a form as a JSON object, with a readable error that
 * says where the JSON breaks (line and column, easier to find in a textarea).
 */
export function parseJsonObject(text: string, what: string): { ok: true; value: Record<string, unknown> } | { ok: false; error: string } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    const msg = e instanceof Error ? e.message : "invalid JSON";
    const pos = /position (\d+)/.exec(msg);
    let where = "";
    if (pos) {
      const before = text.slice(0, Number(pos[1]));
      where = ` at line ${before.split("\n").length}, column ${before.length - before.lastIndexOf("\n")}`;
    }
    const reason = msg
      .replace(/ in JSON at position \d+.*$/s, "")
      .replace(/ \(line \d+ column \d+\)$/, "")
      .replace(/, ".*" is not valid JSON$/s, "");
    return { ok: false, error: `Not valid JSON${where}: ${reason}. ${what}` };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return { ok: false, error: `Must be a JSON object, not a list or a single value. ${what}` };
  return { ok: true, value: value as Record<string, unknown> };
}
