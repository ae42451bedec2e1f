"use client";

import { useRef, type KeyboardEvent, type ReactNode, type Ref } from "react";
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

/** Highlights one line of Cedar as spans (no HTML strings: the text is never interpreted). */
export function highlightLine(line: string): ReactNode[] {
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
    out.push(kind ? (
      <span key={m.index} className={cls[kind]}>
        {text}
      </span>
    ) : (
      text
    ));
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
function Lines({ text, marks }: { text: string; marks: Map<number, CedarIssue[]> }) {
  const lines = text.split("\n");
  return (
    <>
      {lines.map((l, i) => (
        <span key={i} className={cx(marks.has(i + 1) && "underline decoration-rose-500 decoration-wavy decoration-1 underline-offset-4")}>
          {l ? highlightLine(l) : i === lines.length - 1 ? " " : ""}
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

/** Read-only Cedar with highlighting and line numbers; the <pre> carries `testId`. */
export function CedarCode({ text, issues, testId, className, label }: { text: string; issues?: CedarIssue[]; testId?: string; className?: string; label?: string }) {
  const marks = issuesByLine(issues);
  const count = text.split("\n").length;
  return (
    <div className={cx("flex overflow-auto rounded-md bg-slate-50 ring-1 ring-slate-200", className)}>
      <div className="sticky left-0 shrink-0 border-r border-slate-200 bg-slate-100">
        <Gutter count={count} marks={marks} />
      </div>
      <pre data-testid={testId} aria-label={label} className={cx(LINE, "m-0 flex-1 whitespace-pre p-3 text-slate-800")}>
        <Lines text={text} marks={marks} />
      </pre>
    </div>
  );
}

/**
 * A small Cedar editor: a transparent textarea over a highlighted <pre>, with
 * line numbers; the offending lines are marked in the gutter. Tab keeps its
 * usual meaning (leaving the editor); Enter keeps the line's indentation.
 */
export function CedarEditor({
  id,
  value,
  onChange,
  issues,
  readOnly,
  describedBy,
  minLines = 12,
  maxLines = 32,
}: {
  id: string;
  value: string;
  onChange: (v: string) => void;
  issues?: CedarIssue[];
  readOnly?: boolean;
  describedBy?: string;
  minLines?: number;
  maxLines?: number;
}) {
  const pre = useRef<HTMLPreElement>(null);
  const gutter = useRef<HTMLDivElement>(null);
  const marks = issuesByLine(issues);
  const count = value.split("\n").length;
  // 20px lines, 12px padding above and below, and room for a horizontal scrollbar.
  const height = Math.min(Math.max(count, minLines), maxLines) * 20 + 24 + 16;

  const sync = (ta: HTMLTextAreaElement) => {
    if (pre.current) {
      pre.current.scrollTop = ta.scrollTop;
      pre.current.scrollLeft = ta.scrollLeft;
    }
    if (gutter.current?.parentElement) gutter.current.parentElement.scrollTop = ta.scrollTop;
  };

  const onKeyDown = (e: KeyboardEvent<HTMLTextAreaElement>) => {
    if (readOnly || e.key !== "Enter" || e.shiftKey || e.altKey || e.ctrlKey || e.metaKey || e.nativeEvent.isComposing) return;
    const ta = e.currentTarget;
    const start = ta.value.lastIndexOf("\n", ta.selectionStart - 1) + 1;
    const indent = /^[ \t]*/.exec(ta.value.slice(start, ta.selectionStart))?.[0] ?? "";
    if (!indent) return;
    e.preventDefault();
    // insertText keeps the browser's undo history; fall back to a plain edit.
    if (!document.execCommand?.("insertText", false, `\n${indent}`)) {
      const next = `${ta.value.slice(0, ta.selectionStart)}\n${indent}${ta.value.slice(ta.selectionEnd)}`;
      const caret = ta.selectionStart + 1 + indent.length;
      onChange(next);
      requestAnimationFrame(() => ta.setSelectionRange(caret, caret));
    }
  };

  return (
    <div className={cx("flex overflow-hidden rounded-md ring-1 ring-inset focus-within:ring-2 focus-within:ring-indigo-600", readOnly ? "bg-slate-50" : "bg-white", marks.size ? "ring-rose-400" : "ring-slate-300")} style={{ height }}>
      <div className="shrink-0 overflow-hidden border-r border-slate-200 bg-slate-100">
        <Gutter count={count} marks={marks} innerRef={gutter} />
      </div>
      <div className="relative min-w-0 flex-1">
        <pre ref={pre} aria-hidden className={cx(LINE, "pointer-events-none absolute inset-0 m-0 overflow-auto whitespace-pre p-3 text-slate-800")}>
          <Lines text={value} marks={marks} />
        </pre>
        <textarea
          id={id}
          data-testid="cedar-editor"
          value={value}
          readOnly={readOnly}
          aria-readonly={readOnly || undefined}
          aria-describedby={describedBy}
          aria-invalid={marks.size > 0 || (issues?.length ?? 0) > 0}
          onChange={(e) => onChange(e.target.value)}
          onScroll={(e) => sync(e.currentTarget)}
          onKeyDown={onKeyDown}
          onSelect={(e) => sync(e.currentTarget)}
          wrap="off"
          spellCheck={false}
          autoCapitalize="off"
          autoComplete="off"
          autoCorrect="off"
          className={cx(LINE, "absolute inset-0 h-full w-full resize-none overflow-auto whitespace-pre border-0 bg-transparent p-3 text-transparent caret-slate-900 outline-none selection:bg-indigo-200/60 focus:ring-0")}
        />
      </div>
    </div>
  );
}
