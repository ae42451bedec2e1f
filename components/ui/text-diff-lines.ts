import { diffLines, diffWordsWithSpace } from "diff";

/** One piece of a line: `changed` marks the tokens that differ from the paired line. */
export interface DiffPart {
  text: string;
  changed: boolean;
}
/** One line of a unified diff. `skip` stands for `count` unchanged lines left out. */
export type DiffRow = { kind: "same" | "del" | "add"; parts: DiffPart[] } | { kind: "skip"; count: number };

/** Inputs above this many characters are diffed line by line only (word diff is quadratic in the worst case). */
const WORD_DIFF_MAX = 4_000;

const split = (value: string) => {
  const lines = value.split("\n");
  if (lines.at(-1) === "") lines.pop();
  return lines;
};

/** Word diff of a removed line against the added line in its place: the changed tokens of each side. */
function pairParts(before: string, after: string): [DiffPart[], DiffPart[]] {
  if (before.length + after.length > WORD_DIFF_MAX) return [[{ text: before, changed: true }], [{ text: after, changed: true }]];
  const del: DiffPart[] = [];
  const add: DiffPart[] = [];
  for (const c of diffWordsWithSpace(before, after)) {
    if (!c.added) del.push({ text: c.value, changed: Boolean(c.removed) });
    if (!c.removed) add.push({ text: c.value, changed: Boolean(c.added) });
  }
  return [del, add];
}

/**
 * A unified line diff of two texts, with a word diff inside each changed
 * line (the n-th removed line of a block is paired with the n-th added one).
 * Runs of unchanged lines longer than 2 × `context` are folded to a `skip` row.
 */
export function textDiff(before: string, after: string, context = 3): DiffRow[] {
  const rows: DiffRow[] = [];
  const changes = diffLines(before, after);
  for (let i = 0; i < changes.length; i++) {
    const c = changes[i]!;
    if (c.removed && changes[i + 1]?.added) {
      const del = split(c.value);
      const add = split(changes[i + 1]!.value);
      i++;
      const n = Math.max(del.length, add.length);
      const dels: DiffRow[] = [];
      const adds: DiffRow[] = [];
      for (let k = 0; k < n; k++) {
        const b = del[k];
        const a = add[k];
        if (b !== undefined && a !== undefined) {
          const [d, p] = pairParts(b, a);
          dels.push({ kind: "del", parts: d });
          adds.push({ kind: "add", parts: p });
        } else if (b !== undefined) dels.push({ kind: "del", parts: [{ text: b, changed: true }] });
        else if (a !== undefined) adds.push({ kind: "add", parts: [{ text: a, changed: true }] });
      }
      rows.push(...dels, ...adds);
    } else {
      const kind = c.added ? "add" : c.removed ? "del" : "same";
      for (const line of split(c.value)) rows.push({ kind, parts: [{ text: line, changed: kind !== "same" }] });
    }
  }
  return fold(rows, context);
}

function fold(rows: DiffRow[], context: number): DiffRow[] {
  if (!rows.some((r) => r.kind !== "same")) return rows;
  const out: DiffRow[] = [];
  let i = 0;
  while (i < rows.length) {
    if (rows[i]!.kind !== "same") {
      out.push(rows[i++]!);
      continue;
    }
    let j = i;
    while (j < rows.length && rows[j]!.kind === "same") j++;
    const head = i === 0 ? 0 : context;
    const tail = j === rows.length ? 0 : context;
    if (j - i > head + tail + 1) {
      out.push(...rows.slice(i, i + head), { kind: "skip", count: j - i - head - tail }, ...rows.slice(j - tail, j));
    } else out.push(...rows.slice(i, j));
    i = j;
  }
  return out;
}

/**
 * Lays out Cedar text one clause a line so a line diff points at the change:
 * the scope (principal, action, resource) one per line, each `when`/`unless`
 * on its own line, `&&`/`||` starting a line. String literals are left as
 * they are. A display aid only: the text compared and signed is unchanged.
 */
export function layoutCedar(text: string): string {
  let out = "";
  let depth = 0; // parentheses/brackets/braces
  let inScope = false;
  let line = "";
  const lines: string[] = [];
  const flush = () => {
    if (line.trim()) lines.push(line.replace(/\s+$/, ""));
    line = "";
  };
  const indent = (d: number) => "  ".repeat(Math.max(0, d));
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      line += text.slice(i, j + 1);
      i = j;
      continue;
    }
    if (ch === "\n") {
      flush();
      continue;
    }
    if (/\s/.test(ch) && line.trim() === "") continue;
    const rest = text.slice(i);
    if (depth === 0 && /^(when|unless)\b/.test(rest) && line.trim()) {
      flush();
    }
    if ((rest.startsWith("&&") || rest.startsWith("||")) && depth >= 1 && line.trim()) {
      flush();
      line = indent(depth);
    }
    if (ch === "(" && depth === 0 && /(permit|forbid)\s*$/.test(line)) {
      line += ch;
      depth++;
      inScope = true;
      flush();
      line = indent(1);
      continue;
    }
    if (ch === "," && inScope && depth === 1) {
      line += ch;
      flush();
      line = indent(1);
      continue;
    }
    if (ch === ")" && inScope && depth === 1) {
      flush();
      depth--;
      inScope = false;
      line = ")";
      continue;
    }
    if (ch === "{" && depth === 0) {
      line += ch;
      depth++;
      flush();
      line = indent(1);
      continue;
    }
    if (ch === "}" && depth === 1 && !inScope) {
      flush();
      depth--;
      line = "}";
      continue;
    }
    if (ch === "(" || ch === "[" || ch === "{") depth++;
    if (ch === ")" || ch === "]" || ch === "}") depth--;
    if (ch === ";" && depth === 0) {
      line += ch;
      flush();
      continue;
    }
    line += ch;
  }
  flush();
  out = lines.join("\n");
  return out;
}

/** JSON one key a line, for a line diff of stored values. */
export const prettyJson = (v: unknown): string => (v === undefined ? "" : (JSON.stringify(v, null, 2) ?? ""));
