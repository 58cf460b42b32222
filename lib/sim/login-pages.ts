import { escapeHtml, hiddenInput, layout, PageParts, scriptJson } from "./html.js";
import { B2C_API, B2C_POLICY, B2C_TENANT_PATH } from "./login-urls.js";

/**
 * The HTML of the login pages. Names and ids of inputs, the form attributes and the SETTINGS
 * script follow the login contract; everything else (titles, labels, layout) is cosmetic and a
 * client must not depend on it. `missing` is the part a `break_page` fault leaves out.
 */

export function startPage(input: { action: string; token: string }, missing?: string): string {
  const parts = new PageParts(missing);
  const fields = [
    parts.part("__RequestVerificationToken", hiddenInput("__RequestVerificationToken", input.token)),
    '<label for="LoginForm_UserName">User name</label>',
    parts.part(
      "LoginForm$UserName",
      '<input type="text" name="LoginForm$UserName" id="LoginForm_UserName" autocomplete="username" autofocus>',
    ),
    parts.part(
      "LoginForm$btnSave",
      '<button type="submit" name="LoginForm$btnSave" id="LoginForm_btnSave" value="Next">Next</button>',
    ),
  ].join("\n");
  return layout(
    "Exact Online | Log in",
    [
      "<h1>Exact Online</h1>",
      parts.wrap(
        "form",
        `<form method="post" action="${escapeHtml(input.action)}" id="LoginForm">`,
        fields,
        "</form>",
      ),
    ].join("\n"),
  );
}

/**
 * B2C's sign-in page. A client reads `SETTINGS` and posts to `SelfAsserted` and `confirmed`
 * itself; the small script does the same for a person with a browser, so the page also works
 * by hand.
 */
export function b2cPage(
  input: { csrf: string; transId: string; usernameHint: string },
  missing?: string,
): string {
  const parts = new PageParts(missing);
  const settings = parts.object({
    api: B2C_API,
    csrf: input.csrf,
    transId: input.transId,
    hosts: { tenant: B2C_TENANT_PATH, policy: B2C_POLICY },
    locale: { lang: "en" },
  });
  const fields = [
    '<label for="signInName">Email address</label>',
    parts.part(
      "signInName",
      `<input type="email" id="signInName" name="signInName" value="${escapeHtml(input.usernameHint)}" autocomplete="username">`,
    ),
    '<label for="password">Password</label>',
    parts.part(
      "password",
      '<input type="password" id="password" name="password" autocomplete="current-password">',
    ),
    '<label for="totpVerificationCode">Verification code</label>',
    parts.part(
      "totpVerificationCode",
      '<input type="text" id="totpVerificationCode" name="totpVerificationCode" inputmode="numeric" autocomplete="one-time-code">',
    ),
    '<button type="submit" id="next">Sign in</button>',
  ].join("\n");
  return layout(
    "Sign in | Exact",
    [
      parts.part("SETTINGS", `<script>var SETTINGS = ${scriptJson(settings)};</script>`),
      "<h1>Sign in</h1>",
      '<p id="error" role="alert"></p>',
      parts.wrap(
        "form",
        '<form id="localAccountForm" action="JavaScript:void(0);" method="post">',
        fields,
        "</form>",
      ),
      `<script>${SIGN_IN_SCRIPT}</script>`,
    ].join("\n"),
  );
}

/** What B2C's JavaScript does, in short: SelfAsserted, then confirmed. For people, not for drivers. */
const SIGN_IN_SCRIPT = `
document.getElementById("next").addEventListener("click", async function (event) {
  event.preventDefault();
  var value = function (id) { var el = document.getElementById(id); return el ? el.value : ""; };
  var base = location.origin + SETTINGS.hosts.tenant;
  var query = "tx=" + SETTINGS.transId + "&p=" + SETTINGS.hosts.policy;
  var response = await fetch(base + "/SelfAsserted?" + query, {
    method: "POST",
    headers: { "X-CSRF-TOKEN": SETTINGS.csrf, "X-Requested-With": "XMLHttpRequest" },
    body: new URLSearchParams({ request_type: "RESPONSE", signInName: value("signInName"),
      password: value("password"), totpVerificationCode: value("totpVerificationCode") })
  });
  var result = await response.json();
  if (result.status === "200") {
    location.href = base + "/api/" + SETTINGS.api + "/confirmed?rememberMe=false&csrf_token=" + SETTINGS.csrf + "&" + query;
  } else {
    document.getElementById("error").textContent = result.message;
  }
});`;

/** The page that carries B2C's answer back to Exact: a form that posts itself. */
export function confirmedPage(
  input: { action: string; state: string; code: string; idToken: string },
  missing?: string,
): string {
  const parts = new PageParts(missing);
  const fields = [
    parts.part("state", hiddenInput("state", input.state)),
    parts.part("code", hiddenInput("code", input.code)),
    parts.part("id_token", hiddenInput("id_token", input.idToken)),
    '<noscript><button type="submit">Continue</button></noscript>',
  ].join("\n");
  return layout(
    "Signing in | Exact",
    [
      parts.wrap(
        "form",
        `<form method="post" action="${escapeHtml(input.action)}" id="auto">`,
        fields,
        "</form>",
      ),
      '<script>var form = document.getElementById("auto"); if (form) form.submit();</script>',
    ].join("\n"),
  );
}

export function consentPage(
  input: { action: string; token: string; clientId: string; userName: string },
  missing?: string,
): string {
  const parts = new PageParts(missing);
  const fields = [
    parts.part("__RequestVerificationToken", hiddenInput("__RequestVerificationToken", input.token)),
    parts.part("consent", '<button type="submit" name="consent" value="allow">Allow</button>'),
  ].join("\n");
  return layout(
    "Exact Online | Allow access",
    [
      "<h1>Allow access?</h1>",
      `<p>The app <strong>${escapeHtml(input.clientId)}</strong> asks for access to Exact Online as <strong>${escapeHtml(input.userName)}</strong>.</p>`,
      parts.wrap("form", `<form method="post" action="${escapeHtml(input.action)}">`, fields, "</form>"),
    ].join("\n"),
  );
}

/** Every refusal that is not a redirect: a short page with the reason in `#error`. */
export function errorPage(message: string): string {
  return layout("Exact Online | Error", `<h1>Error</h1>\n<p id="error">${escapeHtml(message)}</p>`);
}
