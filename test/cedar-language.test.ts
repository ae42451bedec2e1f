/**
 * The Cedar editor's language support, headless: completion offers what the
 * server's generated schema holds (the named tools' arguments, actions, tools,
 * attributes), issues become diagnostics at their position, hover explains an argument.
 */
import { CompletionContext, type CompletionResult } from "@codemirror/autocomplete";
import { EditorState, Text } from "@codemirror/state";
import { describe, expect, it } from "vitest";
import { cedarCompletions, hoverText, toDiagnostics, vocabulary } from "@/components/policies/cedar-language";
import { argumentTypes, cedarSchema } from "@/lib/enforcement/model";

const tools = [
  { name: "create_ticket", inputSchema: { type: "object", properties: { project: { type: "string" }, title: { type: "string" }, priority: { type: "integer" } } } },
  { name: "get_ticket", inputSchema: { type: "object", properties: { id: { type: "string" } } } },
];
const { types } = argumentTypes(tools.map((t) => ({ inputSchema: t.inputSchema })));
const info = {
  schema: cedarSchema(types),
  text: "",
  arguments: types,
  conflicts: [],
  tools: [
    ...tools.map((t) => ({ name: t.name, approved: true, blocked: false, arguments: Object.keys(t.inputSchema.properties).sort() })),
    { name: "drop_all", approved: false, blocked: false, arguments: ["secret_arg"] },
  ],
};
const vocab = vocabulary(info, "srv_1");
const source = cedarCompletions(vocab);

/** Completion labels at the `|` of `text`. */
function complete(text: string, explicit = false): string[] {
  const pos = text.indexOf("|");
  const state = EditorState.create({ doc: text.replace("|", "") });
  const r = source(new CompletionContext(state, pos, explicit)) as CompletionResult | null;
  return (r?.options ?? []).map((o) => o.label);
}

describe("Cedar completion from the generated schema", () => {
  it("offers the named tool's arguments after context.args., with their types", () => {
    const text = `forbid (principal, action == Action::"call_tool", resource == Tool::"srv_1/create_ticket")\nwhen { context.args.| };`;
    expect(complete(text)).toEqual(["priority", "project", "title"]);
    const pos = text.indexOf("|");
    const r = source(new CompletionContext(EditorState.create({ doc: text.replace("|", "") }), pos, false)) as CompletionResult;
    expect(r.options.find((o) => o.label === "priority")?.detail).toBe("Long");
  });

  it("offers the arguments after `context.args has` (the guard Cedar wants before an optional read)", () => {
    const text = `forbid (principal, action, resource == Tool::"srv_1/get_ticket") when { context.args has | };`;
    expect(complete(text)).toEqual(["id"]);
  });

  it("offers every approved tool's arguments when the policy names no tool, never an unapproved tool's", () => {
    const got = complete(`permit (principal, action, resource) when { context.args.pr| };`);
    expect(got).toEqual(["id", "priority", "project", "title"]);
    expect(got).not.toContain("secret_arg");
  });

  it("offers actions, approved tools, context and entity attributes", () => {
    expect(complete(`permit (principal, action == Action::"|`)).toEqual(expect.arrayContaining(["call_tool", "list_tools", "read_resource"]));
    expect(complete(`permit (principal, action, resource == Tool::"|`)).toEqual(["srv_1/create_ticket", "srv_1/get_ticket"]);
    expect(complete(`permit (principal, action, resource) when { context.| };`)).toEqual(expect.arrayContaining(["args", "scopes", "client", "tenant", "time", "delegation"]));
    expect(complete(`permit (principal, action, resource) when { context.time.| };`).sort()).toEqual(["epoch", "hour", "weekday"]);
    expect(complete(`permit (principal, action, resource) when { principal.| };`).sort()).toEqual(["iss", "sub"]);
    expect(complete(`permit (principal, action, resource) when { resource.| };`)).toEqual(expect.arrayContaining(["risk", "readOnly", "destructive"]));
    expect(complete(`per|`)).toEqual(expect.arrayContaining(["permit", "forbid", "Tool::", "User::"]));
  });

  it("offers nothing inside a comment or a plain string", () => {
    expect(complete(`// context.args.|`)).toEqual([]);
    expect(complete(`when { context.client == "context.args.|" }`)).toEqual([]);
  });
});

describe("diagnostics and hover", () => {
  it("places a validator issue at its line and column, over the word there", () => {
    const doc = Text.of(["permit (", "  principal,", '  action == Action::"call_tol",']);
    const [d] = toDiagnostics(doc, [{ message: "unknown action", help: "did you mean call_tool?", line: 3, column: 13 }]);
    expect(doc.sliceString(d!.from, d!.to)).toBe("Action");
    expect(d!.message).toBe("unknown action (did you mean call_tool?)");
    // An issue without a line still shows, at the top.
    expect(toDiagnostics(doc, [{ message: "empty" }])[0]!.from).toBe(0);
  });

  it("explains an argument and a keyword on hover", () => {
    const doc = Text.of([`when { context.args.project == "payroll" }`]);
    expect(hoverText(doc, doc.toString().indexOf("project") + 2, vocab)).toMatch(/^context\.args\.project: String — argument of create_ticket/);
    expect(hoverText(doc, 1, vocab)).toMatch(/^when/);
  });
});
