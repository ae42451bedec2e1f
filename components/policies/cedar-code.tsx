"use client";

import type { ReactNode, Ref } from "react";
import { cx } from "@/components/ui";
import type { CedarIssue } from "./types";

const KEYWORDS = new Set(["permit", "forbid", "when", "unless", "principal", "action", "resource", "context", "in", "has", "like", "is", "if", "then", "else", "true", "false"]);
const ENTITY_TYPES = new Set(["Tenant", "Group", "User", "Server", "Tool", "Action"]);

// Comments, strings (an unterminated one runs to the end of the line), annotations,
// entity type paths before an id (Tool::"…"), words, numbers.
const TOKEN = /(\/\/.*)|("(?:[^"\\]|\\.)*"?)|(@[A-Za-z_]\w*)|((?:[A-Za-z_]\w*::)+)(?=")|([A-Za-z_]\w*)|(\d+)/g;

const cls = {
  comment: "text-slate-500",
  string: "text-emerald-700",
  annotation: "text-fuchsia-700",
  entity: "text-amber-700",
  keyword: "text-indigo-700",
  number: "text-sky-700",
} as const;

/**
 * What a string literal names, from `names` (id → "server Ticket desk", …):
 * `"srv_…/list_tickets"` (a tool of a server) or a bare id.
 */
export function nameOfLiteral(literal: string, names: Record<string, string> | undefined): string | undefined {
  if (!names || literal.length < 3) return undefined;
  const inner = literal.slice(1, -1);
  const slash = inner.indexOf("/");
  if (slash > 0 && names[inner.slice(0, slash)]) return `${names[inner.slice(0, slash)]} / ${inner.slice(slash + 1)}`;
  return names[inner];
}

/** Highlights one line of Cedar as spans (no HTML strings: the text is never interpreted). `names` adds tooltips to ids in strings. */
export function highlightLine(line: string, names?: Record<string, string>): ReactNode[] {
  const out: ReactNode[] = [];
  let last = 0;
  let m: RegExpExecArray | null;
  TOKEN.lastIndex = 0;
  while ((m = TOKEN.exec(line))) {
    if (m.index > last) out.push(line.slice(last, m.index));
    const [text, comment, string, annotation, entity, word, number] = m;
    const kind = comment
      ? "comment"
      : string
        ? "string"
        : annotation
          ? "annotation"
          : entity
            ? "entity"
            : word
              ? KEYWORDS.has(word)
                ? "keyword"
                : ENTITY_TYPES.has(word)
                  ? "entity"
                  : null
              : number
                ? "number"
                : null;
    const named = kind === "string" ? nameOfLiteral(text, names) : undefined;
    out.push(
      named ? (
        <span key={m.index} className={cx(cls.string, "cursor-help underline decoration-dotted decoration-slate-400 underline-offset-2")} title={named} data-testid="cedar-name">
          {text}
        </span>
      ) : kind ? (
        <span key={m.index} className={cls[kind]}>
          {text}
        </span>
      ) : (
        text
      ),
    );
    last = m.index + text.length;
  }
  if (last < line.length) out.push(line.slice(last));
  return out;
}

/** Issues by line number (1-based), for gutter marks. */
export function issuesByLine(issues: CedarIssue[] | undefined): Map<number, CedarIssue[]> {
  const map = new Map<number, CedarIssue[]>();
  for (const i of issues ?? []) {
    if (!i.line) continue;
    map.set(i.line, [...(map.get(i.line) ?? []), i]);
  }
  return map;
}

const LINE = "text-[13px] leading-5 font-mono";

/** The highlighted lines of a text; a trailing empty line keeps its height. */
function Lines({ text, marks, names }: { text: string; marks: Map<number, CedarIssue[]>; names?: Record<string, string> }) {
  const lines = text.split("\n");
  return (
    <>
      {lines.map((l, i) => (
        <span key={i} className={cx(marks.has(i + 1) && "underline decoration-rose-500 decoration-wavy decoration-1 underline-offset-4")}>
          {l ? highlightLine(l, names) : i === lines.length - 1 ? " " : ""}
          {i < lines.length - 1 ? "\n" : ""}
        </span>
      ))}
    </>
  );
}

function Gutter({ count, marks, innerRef }: { count: number; marks: Map<number, CedarIssue[]>; innerRef?: Ref<HTMLDivElement> }) {
  return (
    <div ref={innerRef} aria-hidden className={cx(LINE, "select-none py-3 pb-10 text-right text-slate-400")}>
      {Array.from({ length: count }, (_, i) => {
        const bad = marks.get(i + 1);
        return (
          <div
            key={i}
            data-line={i + 1}
            data-error={bad ? "true" : undefined}
            title={bad?.map((x) => x.message).join("\n")}
            className={cx("h-5 pr-2 pl-3", bad && "bg-rose-100 font-semibold text-rose-700")}
          >
            {bad ? <span className="mr-1 text-rose-600">●</span> : null}
            {i + 1}
          </div>
        );
      })}
    </div>
  );
}

/**
 * Read-only Cedar with highlighting and line numbers; the <pre> carries `testId`.
 * `names` (id → what it is, e.g. "server Ticket desk") shows the name of an id
 * in a string literal as its tooltip.
 */
export function CedarCode({
  text,
  issues,
  testId,
  className,
  label,
  names,
}: {
  text: string;
  issues?: CedarIssue[];
  testId?: string;
  className?: string;
  label?: string;
  names?: Record<string, string>;
}) {
  const marks = issuesByLine(issues);
  const count = text.split("\n").length;
  return (
    <div className={cx("flex overflow-auto rounded-md bg-slate-50 ring-1 ring-slate-200", className)}>
      <div className="sticky left-0 shrink-0 border-r border-slate-200 bg-slate-100">
        <Gutter count={count} marks={marks} />
      </div>
      <pre data-testid={testId} aria-label={label} className={cx(LINE, "m-0 flex-1 whitespace-pre p-3 text-slate-800")}>
        <Lines text={text} marks={marks} names={names} />
      </pre>
    </div>
  );
}
