"use client";

import { autocompletion, closeBrackets, closeBracketsKeymap, completionKeymap } from "@codemirror/autocomplete";
import { defaultKeymap, history, historyKeymap } from "@codemirror/commands";
import { bracketMatching, HighlightStyle, indentOnInput, syntaxHighlighting } from "@codemirror/language";
import { lintGutter, setDiagnostics } from "@codemirror/lint";
import { Compartment, EditorState } from "@codemirror/state";
import { drawSelection, EditorView, highlightActiveLine, hoverTooltip, keymap, lineNumbers, placeholder } from "@codemirror/view";
import { tags as t } from "@lezer/highlight";
import { useEffect, useMemo, useRef, type RefObject } from "react";
import { cx } from "@/components/ui";
import { cedarCompletions, cedarLanguage, hoverText, toDiagnostics, vocabulary, type CedarVocabulary } from "./cedar-language";
import type { CedarIssue, CedarSchemaInfo } from "./types";

// Colours as CSS variables (globals.css), so dark mode needs no second theme.
const highlight = HighlightStyle.define([
  { tag: t.comment, color: "var(--cm-comment)", fontStyle: "italic" },
  { tag: t.string, color: "var(--cm-string)" },
  { tag: t.keyword, color: "var(--cm-keyword)", fontWeight: "600" },
  { tag: t.typeName, color: "var(--cm-type)" },
  { tag: t.meta, color: "var(--cm-meta)" },
  { tag: t.number, color: "var(--cm-number)" },
  { tag: t.atom, color: "var(--cm-number)" },
  { tag: t.propertyName, color: "var(--cm-property)" },
  { tag: t.operator, color: "var(--cm-operator)" },
]);

const theme = EditorView.theme({
  "&": { fontSize: "13px", backgroundColor: "var(--cm-bg)", color: "var(--cm-fg)" },
  "&.cm-focused": { outline: "none" },
  ".cm-content": { fontFamily: "ui-monospace, SFMono-Regular, Menlo, monospace", padding: "12px 0", caretColor: "var(--cm-fg)" },
  ".cm-gutters": { backgroundColor: "var(--cm-gutter-bg)", color: "var(--cm-gutter-fg)", borderRight: "1px solid var(--cm-border)" },
  ".cm-activeLine": { backgroundColor: "var(--cm-active)" },
  ".cm-activeLineGutter": { backgroundColor: "var(--cm-active)" },
  ".cm-scroller": { lineHeight: "20px" },
  ".cm-tooltip": { fontSize: "12px", maxWidth: "28rem" },
  ".cm-tooltip-hover": { padding: "4px 8px" },
});

export interface CedarEditorProps {
  id: string;
  value: string;
  onChange: (v: string) => void;
  issues?: CedarIssue[];
  readOnly?: boolean;
  describedBy?: string;
  /** The server's generated schema: completion and hover come from it. */
  schema?: CedarSchemaInfo;
  serverId: string;
  /** Set by the editor: moves the caret to a line and column (1-based) and focuses. */
  jumpRef?: RefObject<((line: number, column: number) => void) | null>;
  /** Shift-Alt-F: apply the formatter's text (null when the text does not parse). */
  formatted?: string | null;
  minLines?: number;
  maxLines?: number;
}

/**
 * The Cedar editor on CodeMirror 6: Cedar highlighting, completion from the
 * server's schema (entity types, actions, tools, attributes and the named tools'
 * context.args), the validator's issues inline, hover help, undo history, and
 * Tab left to the browser (it moves focus; the editor never traps it).
 */
export default function CedarEditor({ id, value, onChange, issues, readOnly, describedBy, schema, serverId, jumpRef, formatted, minLines = 12, maxLines = 32 }: CedarEditorProps) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  const onChangeRef = useRef(onChange);
  const vocab = useRef<CedarVocabulary | null>(null);
  const formattedRef = useRef(formatted);
  const comp = useMemo(() => ({ completion: new Compartment(), editable: new Compartment(), attrs: new Compartment() }), []);
  useEffect(() => {
    onChangeRef.current = onChange;
    formattedRef.current = formatted;
  });

  // Created once; later prop changes are dispatched into it.
  useEffect(() => {
    const state = EditorState.create({
      doc: value,
      extensions: [
        lineNumbers(),
        history(),
        drawSelection(),
        highlightActiveLine(),
        indentOnInput(),
        bracketMatching(),
        closeBrackets(),
        cedarLanguage,
        syntaxHighlighting(highlight),
        lintGutter(),
        comp.completion.of([]),
        comp.editable.of([]),
        comp.attrs.of([]),
        hoverTooltip((v, pos) => {
          const text = hoverText(v.state.doc, pos, vocab.current);
          if (!text) return null;
          return {
            pos,
            create: () => {
              const dom = document.createElement("div");
              dom.textContent = text;
              return { dom };
            },
          };
        }),
        keymap.of([
          ...closeBracketsKeymap,
          ...completionKeymap,
          ...historyKeymap,
          {
            key: "Shift-Alt-f",
            run: (v) => {
              const f = formattedRef.current;
              if (!f || f === v.state.doc.toString() || v.state.readOnly) return false;
              v.dispatch({ changes: { from: 0, to: v.state.doc.length, insert: f } });
              return true;
            },
          },
          ...defaultKeymap,
        ]),
        placeholder("permit (principal, action, resource) when { … };"),
        theme,
        EditorView.updateListener.of((u) => {
          if (u.docChanged) onChangeRef.current(u.state.doc.toString());
        }),
      ],
    });
    const v = new EditorView({ state, parent: host.current! });
    view.current = v;
    return () => {
      v.destroy();
      view.current = null;
    };
    // The document is seeded once; `value` changes from outside are synced below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  // A value set from outside (Format, a restore) replaces the document.
  useEffect(() => {
    const v = view.current;
    if (v && v.state.doc.toString() !== value) v.dispatch({ changes: { from: 0, to: v.state.doc.length, insert: value } });
  }, [value]);

  useEffect(() => {
    const v = view.current;
    if (!v) return;
    vocab.current = schema ? vocabulary(schema, serverId) : null;
    v.dispatch({
      effects: comp.completion.reconfigure(vocab.current ? autocompletion({ override: [cedarCompletions(vocab.current)], activateOnTyping: true, icons: false }) : autocompletion({ override: [] })),
    });
  }, [schema, serverId, comp]);

  useEffect(() => {
    view.current?.dispatch({ effects: comp.editable.reconfigure([EditorState.readOnly.of(Boolean(readOnly)), EditorView.editable.of(!readOnly)]) });
  }, [readOnly, comp]);

  useEffect(() => {
    const v = view.current;
    if (!v) return;
    v.dispatch({
      effects: comp.attrs.reconfigure(
        EditorView.contentAttributes.of({
          id,
          "data-testid": "cedar-editor",
          "aria-label": "Cedar",
          "aria-multiline": "true",
          ...(describedBy ? { "aria-describedby": describedBy } : {}),
          "aria-invalid": String((issues?.length ?? 0) > 0),
          ...(readOnly ? { "aria-readonly": "true" } : {}),
        }),
      ),
    });
  }, [id, describedBy, issues, readOnly, comp]);

  // The validator's issues, inline: underlined at their position, listed in the gutter.
  useEffect(() => {
    const v = view.current;
    if (v) v.dispatch(setDiagnostics(v.state, toDiagnostics(v.state.doc, issues)));
  }, [issues]);

  useEffect(() => {
    if (!jumpRef) return;
    jumpRef.current = (line, column) => {
      const v = view.current;
      if (!v) return;
      const l = v.state.doc.line(Math.min(Math.max(1, line), v.state.doc.lines));
      const pos = Math.min(l.to, l.from + Math.max(0, column - 1));
      v.dispatch({ selection: { anchor: pos }, effects: EditorView.scrollIntoView(pos, { y: "center" }) });
      v.focus();
    };
  }, [jumpRef]);

  const lines = value.split("\n").length;
  const height = Math.min(Math.max(lines, minLines), maxLines) * 20 + 24 + 4;
  return (
    <div
      ref={host}
      className={cx(
        "cedar-cm overflow-hidden rounded-md ring-1 ring-inset focus-within:ring-2 focus-within:ring-indigo-600 [&_.cm-editor]:h-full",
        (issues?.length ?? 0) > 0 ? "ring-rose-400" : "ring-slate-300",
      )}
      style={{ height }}
    />
  );
}
