import { type HTMLElement, parse } from "node-html-parser";

/** One name/value pair a form submits. */
export interface FormControl {
  readonly name: string;
  readonly value: string;
}

/** A `<form>` as a browser would submit it; controls are found by name, never by position. */
export interface HtmlForm {
  /** The raw `action` attribute; absent means the page's own URL, as in a browser. */
  readonly action: string | undefined;
  readonly method: "GET" | "POST";
  /** What a browser submits, in document order, apart from the clicked button. */
  readonly fields: readonly FormControl[];
  /** Named submit buttons: a browser sends only the one that was clicked. */
  readonly submitters: readonly FormControl[];
  /** Every control name in the form, including unchecked boxes and buttons. */
  readonly names: ReadonlySet<string>;
}

const SKIPPED_INPUT_TYPES = new Set(["button", "reset", "file", "image"]);

/**
 * Every form of a page. Parsing keeps unclosed tags open rather than dropping them, so a sloppy
 * page still yields its inputs; a control belongs to its nearest enclosing form.
 */
export function parseForms(html: string): HtmlForm[] {
  const root = parse(html, { parseNoneClosedTags: true });
  return root.querySelectorAll("form").map((form) => readForm(form));
}

function readForm(form: HTMLElement): HtmlForm {
  const fields: FormControl[] = [];
  const submitters: FormControl[] = [];
  const names = new Set<string>();
  for (const control of form.querySelectorAll("input, button, select, textarea")) {
    if (nearestForm(control) !== form) continue;
    const name = control.getAttribute("name");
    if (!name) continue;
    names.add(name);
    if (control.hasAttribute("disabled")) continue;
    const tag = control.tagName.toLowerCase();
    const type = (control.getAttribute("type") ?? (tag === "button" ? "submit" : "text")).toLowerCase();
    if (tag === "button" || (tag === "input" && type === "submit")) {
      if (type === "submit") submitters.push({ name, value: control.getAttribute("value") ?? "" });
    } else if (tag === "select") {
      fields.push(...selectedOptions(control).map((value) => ({ name, value })));
    } else if (tag === "textarea") {
      fields.push({ name, value: control.text });
    } else if (type === "checkbox" || type === "radio") {
      if (control.hasAttribute("checked"))
        fields.push({ name, value: control.getAttribute("value") ?? "on" });
    } else if (!SKIPPED_INPUT_TYPES.has(type)) {
      fields.push({ name, value: control.getAttribute("value") ?? "" });
    }
  }
  const method = (form.getAttribute("method") ?? "get").toUpperCase() === "POST" ? "POST" : "GET";
  return { action: form.getAttribute("action"), method, fields, submitters, names };
}

function nearestForm(element: HTMLElement): HTMLElement | undefined {
  for (let node = element.parentNode; node; node = node.parentNode) {
    if (node.tagName?.toLowerCase() === "form") return node;
  }
  return undefined;
}

function selectedOptions(select: HTMLElement): string[] {
  const options = select.querySelectorAll("option").filter((option) => !option.hasAttribute("disabled"));
  const optionValue = (option: HTMLElement): string => option.getAttribute("value") ?? option.text.trim();
  const selected = options.filter((option) => option.hasAttribute("selected"));
  if (selected.length > 0)
    return select.hasAttribute("multiple")
      ? selected.map(optionValue)
      : [optionValue(selected[0] as HTMLElement)];
  const first = options[0];
  return !select.hasAttribute("multiple") && first ? [optionValue(first)] : [];
}

/**
 * The form's controls with `fill` applied: a filled name replaces the form's value (once,
 * where it stands), names the form lacks are appended, then the clicked button if any.
 */
export function formPairs(
  form: HtmlForm,
  fill: Readonly<Record<string, string>>,
  submitter?: FormControl,
): FormControl[] {
  const pending = new Map(Object.entries(fill));
  const pairs: FormControl[] = [];
  for (const field of form.fields) {
    if (!(field.name in fill)) {
      pairs.push(field);
    } else if (pending.has(field.name)) {
      pairs.push({ name: field.name, value: pending.get(field.name) ?? "" });
      pending.delete(field.name);
    }
  }
  for (const [name, value] of pending) pairs.push({ name, value });
  if (submitter) pairs.push(submitter);
  return pairs;
}

/** `application/x-www-form-urlencoded`, as a browser encodes it. */
export function encodeForm(pairs: readonly FormControl[]): string {
  const params = new URLSearchParams();
  for (const { name, value } of pairs) params.append(name, value);
  return params.toString();
}

/**
 * The JSON object literal assigned by `marker` in an inline script, e.g. B2C's
 * `var SETTINGS = {...};`. Undefined when absent or not JSON.
 */
export function readScriptObject(html: string, marker: RegExp): Record<string, unknown> | undefined {
  const found = marker.exec(html);
  if (!found) return undefined;
  const start = html.indexOf("{", found.index + found[0].length);
  if (start < 0 || html.slice(found.index + found[0].length, start).trim() !== "") return undefined;
  const end = matchingBrace(html, start);
  if (end < 0) return undefined;
  try {
    const value: unknown = JSON.parse(html.slice(start, end + 1));
    return typeof value === "object" && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

function matchingBrace(text: string, start: number): number {
  let depth = 0;
  let quote: string | undefined;
  for (let i = start; i < text.length; i++) {
    const char = text[i];
    if (quote) {
      if (char === "\\") i++;
      else if (char === quote) quote = undefined;
    } else if (char === '"' || char === "'") {
      quote = char;
    } else if (char === "{") {
      depth++;
    } else if (char === "}") {
      depth--;
      if (depth === 0) return i;
    }
  }
  return -1;
}
