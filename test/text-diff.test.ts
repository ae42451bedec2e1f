import { describe, expect, it } from "vitest";
import { layoutCedar, prettyJson, textDiff, type DiffRow } from "@/components/ui/text-diff-lines";

const changedTokens = (rows: DiffRow[], kind: "add" | "del") => rows.flatMap((r) => (r.kind === kind ? r.parts.filter((p) => p.changed).map((p) => p.text) : []));

describe("textDiff", () => {
  it("marks only the changed word inside a changed line", () => {
    const rows = textDiff('a\nb\ncontext.tool == "read"\nd\n', 'a\nb\ncontext.tool == "write"\nd\n');
    expect(rows.filter((r) => r.kind === "del")).toHaveLength(1);
    expect(rows.filter((r) => r.kind === "add")).toHaveLength(1);
    expect(changedTokens(rows, "del").join("")).toBe("read");
    expect(changedTokens(rows, "add").join("")).toBe("write");
  });

  it("shows an added or removed line whole, and nothing for equal texts", () => {
    const rows = textDiff("x\n", "x\ny\n");
    expect(rows).toEqual([
      { kind: "same", parts: [{ text: "x", changed: false }] },
      { kind: "add", parts: [{ text: "y", changed: true }] },
    ]);
    expect(textDiff("x\ny", "x\ny").every((r) => r.kind === "same")).toBe(true);
  });

  it("folds long unchanged runs, keeping context around the change", () => {
    const before = Array.from({ length: 30 }, (_, i) => `line ${i}`).join("\n");
    const after = before.replace("line 15", "line fifteen");
    const rows = textDiff(before, after, 2);
    const skips = rows.filter((r) => r.kind === "skip");
    expect(skips).toEqual([
      { kind: "skip", count: 13 },
      { kind: "skip", count: 12 },
    ]);
    expect(rows.length).toBe(1 + 2 + 2 + 2 + 1); // skip, 2 context, del + add, 2 context, skip
  });
});

describe("layoutCedar", () => {
  const compiled =
    'permit (principal, action == Action::"call", resource) when { context.tool == "read_file" && context.args.path like "/home/*" } when { (principal in Tenant::"t1") && (resource in Server::"s;{1}") };';

  it("puts each clause on its own line and leaves string literals whole", () => {
    const out = layoutCedar(compiled);
    const lines = out.split("\n");
    expect(lines.length).toBeGreaterThan(6);
    expect(out).toContain('Server::"s;{1}"');
    expect(lines.some((l) => l.trim().startsWith("&& context.args.path"))).toBe(true);
    // Only whitespace changes: the tokens are the same.
    expect(out.replace(/\s+/g, "")).toBe(compiled.replace(/\s+/g, ""));
  });

  it("turns a change in a one-line policy into one changed line", () => {
    const rows = textDiff(layoutCedar(compiled), layoutCedar(compiled.replace('"/home/*"', '"/tmp/*"')));
    expect(rows.filter((r) => r.kind === "add")).toHaveLength(1);
    expect(changedTokens(rows, "add").join("")).toBe("tmp");
  });
});

describe("prettyJson", () => {
  it("is one key a line, and empty for undefined", () => {
    expect(prettyJson({ a: 1, b: [2] }).split("\n").length).toBe(6);
    expect(prettyJson(undefined)).toBe("");
  });
});
