/**
 * The login pages a `break_page` fault can break, and the named parts each page can lose: the
 * inputs and markers a login driver looks for (the contract names them). Registering a fault
 * with a part the page does not have is a 400, so a typo cannot pass as "the driver coped".
 */
export const LOGIN_PAGES = ["start", "b2c", "confirmed", "consent"] as const;
export type LoginPage = (typeof LOGIN_PAGES)[number];

export const PAGE_PARTS: Readonly<Record<LoginPage, readonly string[]>> = {
  /** `GET /docs/Login.aspx`. */
  start: ["form", "__RequestVerificationToken", "LoginForm$UserName", "LoginForm$btnSave"],
  /** The B2C authorize page; `SETTINGS` is the whole script, `csrf`, `transId`, `hosts` keys of its JSON. */
  b2c: ["SETTINGS", "csrf", "transId", "hosts", "form", "signInName", "password", "totpVerificationCode"],
  /** The auto-posting page of `…/confirmed`. */
  confirmed: ["form", "state", "code", "id_token"],
  /** The consent page of `/api/oauth2/auth`; `consent` is the submit button. */
  consent: ["form", "__RequestVerificationToken", "consent"],
};

export function isLoginPage(value: unknown): value is LoginPage {
  return (LOGIN_PAGES as readonly unknown[]).includes(value);
}
