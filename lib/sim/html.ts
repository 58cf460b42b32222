/**
 * Building blocks of the login pages: escaping, the page frame, and the omission of named parts
 * that the `break_page` fault asks for. Pages are small and self-contained on purpose: no
 * external assets, so they load offline and a client can only depend on what is in the HTML.
 */

const HTML_ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

/** For text and for double-quoted attribute values alike. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => HTML_ESCAPES[char] ?? char);
}

/**
 * JSON that is safe inside a `<script>` element: `<` never appears raw, so a value such as
 * `</script>` cannot end the script early; `\u2028`/`\u2029` are escaped for older parsers.
 */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, "\\u003c")
    .replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029");
}

export function layout(title: string, body: string): string {
  return [
    "<!DOCTYPE html>",
    '<html lang="en">',
    "<head>",
    '<meta charset="utf-8">',
    `<title>${escapeHtml(title)}</title>`,
    "</head>",
    "<body>",
    body,
    "</body>",
    "</html>",
    "",
  ].join("\n");
}

export function hiddenInput(name: string, value: string): string {
  return `<input type="hidden" name="${escapeHtml(name)}" value="${escapeHtml(value)}">`;
}

/**
 * Renders a page's named parts, leaving out the one a `break_page` fault names. A part that
 * wraps others (`form`) loses only its own tags: the inputs stay, outside any form.
 */
export class PageParts {
  constructor(private readonly missing: string | undefined) {}

  part(name: string, html: string): string {
    return name === this.missing ? "" : html;
  }

  wrap(name: string, open: string, inner: string, close: string): string {
    return name === this.missing ? inner : `${open}\n${inner}\n${close}`;
  }

  /** An object without the missing key, for the JSON a page carries in a script. */
  object(entries: Record<string, unknown>): Record<string, unknown> {
    return Object.fromEntries(Object.entries(entries).filter(([key]) => key !== this.missing));
  }
}
