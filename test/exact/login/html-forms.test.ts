import { describe, expect, it } from "vitest";
import { encodeForm, formPairs, parseForms, readScriptObject } from "../../../lib/exact/login/html-forms.js";

const PAGE = `<!DOCTYPE html><html><body>
<form id="login" method="post" action="Login.aspx?ReturnUrl=%2Fa&amp;b=1">
  <table><tr><td><input type="hidden" name="token" value="a&amp;b&quot;c"><input name="user"><p>unclosed
  </td></tr></table>
  <input type="checkbox" name="remember"><input type="checkbox" name="terms" value="yes" checked>
  <input type="radio" name="lang" value="nl"><input type="radio" name="lang" value="en" checked>
  <select name="country"><option value="nl">NL</option><option value="be" selected>BE</option></select>
  <select name="size"><option>small</option><option>large</option></select>
  <textarea name="note">hi &amp; there</textarea>
  <input type="text" name="off" value="x" disabled>
  <input type="submit" name="next" value="Next"><button name="cancel" value="1">Cancel</button>
  <button type="button" name="help">?</button>
</form>
<form action="/search"><input name="q" value="z"></form>
<script>var SETTINGS = {"csrf":"c1","text":"a } and a \\" quote","hosts":{"tenant":"/t"}};</script>
</body></html>`;

describe("parseForms", () => {
  it("reads each form's controls by name, as a browser would submit them", () => {
    const [login, search] = parseForms(PAGE);

    expect(login?.method).toBe("POST");
    expect(login?.action).toBe("Login.aspx?ReturnUrl=%2Fa&b=1");
    expect(login?.fields).toEqual([
      { name: "token", value: 'a&b"c' },
      { name: "user", value: "" },
      { name: "terms", value: "yes" },
      { name: "lang", value: "en" },
      { name: "country", value: "be" },
      { name: "size", value: "small" },
      { name: "note", value: "hi & there" },
    ]);
    expect(login?.submitters).toEqual([
      { name: "next", value: "Next" },
      { name: "cancel", value: "1" },
    ]);
    expect(login?.names.has("remember")).toBe(true);
    expect(login?.names.has("q")).toBe(false);
    expect(search?.method).toBe("GET");
    expect(search?.fields).toEqual([{ name: "q", value: "z" }]);
  });

  it("keeps the inputs of a form whose option tags are not closed", () => {
    const forms = parseForms(
      '<form action="x" method="post"><select name="s"><option value="1">1<option value="2" selected>2</select><input type="hidden" name="h" value="v"></form>',
    );

    expect(forms[0]?.names.has("h")).toBe(true);
  });
});

describe("formPairs", () => {
  it("fills named fields in place, appends missing ones, then the clicked button", () => {
    const [login] = parseForms(PAGE);
    if (!login) throw new Error("no form");

    const pairs = formPairs(login, { user: "alice", extra: "1" }, login.submitters[0]);

    expect(encodeForm(pairs)).toBe(
      "token=a%26b%22c&user=alice&terms=yes&lang=en&country=be&size=small&note=hi+%26+there&extra=1&next=Next",
    );
  });
});

describe("readScriptObject", () => {
  it("reads a JSON object whose strings hold braces and quotes", () => {
    expect(readScriptObject(PAGE, /\bvar\s+SETTINGS\s*=\s*/)).toEqual({
      csrf: "c1",
      text: 'a } and a " quote',
      hosts: { tenant: "/t" },
    });
  });

  it.each([
    ["absent", "<script>var OTHER = {};</script>"],
    ["not JSON", "<script>var SETTINGS = {csrf: 'x'};</script>"],
    ["unterminated", '<script>var SETTINGS = {"a":"b"</script>'],
  ])("returns undefined when %s", (_name, html) => {
    expect(readScriptObject(html, /\bvar\s+SETTINGS\s*=\s*/)).toBeUndefined();
  });
});
