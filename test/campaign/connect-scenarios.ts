import { Cookie } from "tough-cookie";
import { type ChainRecord, ChainStatus } from "../../lib/chain/chain-record.js";
import type { ConnectFlow } from "../../lib/onboarding/connect-flow.js";
import { ConnectRefused } from "../../lib/onboarding/connect-refused.js";
import type { ConnectRequestLog } from "./case-log.js";
import type { CaseRun, Door, Invocation } from "./case-run.js";
import type { ConnectStep } from "./invariants.js";
import { connectFlow } from "./scenarios.js";
import type { CampaignConnection } from "./world.js";

/**
 * The connect flow's two requests in front of its callback (the `connect callback` door): the
 * confirmation page (`GET /start`), which writes nothing, and its button (`POST /start`), which
 * spends the link with one conditional write and answers 303 to Exact with a state bound to the
 * browser's cookie. After the door's request the recovery is the user's: open the link again if
 * its page never came, press again, ask for a new link when a press says `used`, and finish at
 * Exact with the state the browser was sent there with.
 */

/** The user's browser: the link it holds, the cookie the link's page set, the state it was sent to Exact with. */
interface Browser {
  /** Which of the case's links: 1, the operator's first; 2, the one the user asked for next. */
  link: number;
  url: URL;
  /** The link's binding cookie as a browser sends it back (`name=value`), once its page was shown. */
  cookies: string[];
  state: string | undefined;
}

const browsers = new WeakMap<CaseRun, Browser>();

function browserOf(run: CaseRun): Browser {
  const browser = browsers.get(run);
  if (!browser) throw new Error(`${run.door.name}: no link was made`);
  return browser;
}

/** The link the user's browser holds (checker.test.ts's rogues spend it behind the flow's back). */
export function heldLink(run: CaseRun): URL {
  return browserOf(run).url;
}

/** The operator's `exact-broker connect --id`: a new link, which the user's browser holds from now on. */
async function newLink(run: CaseRun, invocation: Invocation): Promise<void> {
  const link = await connectFlow(invocation).createConnectLink({ connectionId: run.connection.connectionId });
  const held = browsers.get(run);
  const fresh = { link: (held?.link ?? 0) + 1, url: new URL(link.url), cookies: [], state: undefined };
  if (held) Object.assign(held, fresh);
  else browsers.set(run, fresh);
}

/**
 * One request of the flow, recorded with its answer: what `send` returns, else the refusal's
 * reason code or the error's name (the connect handler turns every error into a page: so does this).
 */
async function request(
  run: CaseRun,
  invocation: Invocation,
  what: { readonly step: ConnectStep; readonly browser: Browser; readonly wayOn: boolean },
  send: (flow: ConnectFlow) => Promise<string>,
): Promise<string> {
  const record: ConnectRequestLog = {
    tap: invocation.tap,
    step: what.step,
    link: what.browser.link,
    wayOn: what.wayOn,
  };
  run.log.connectRequests.push(record);
  let answer: string;
  try {
    answer = await send(connectFlow(invocation));
  } catch (error) {
    answer =
      error instanceof ConnectRefused ? error.reason : error instanceof Error ? error.name : String(error);
  }
  record.answer = answer;
  return answer;
}

const linkQuery = (browser: Browser) => Object.fromEntries(browser.url.searchParams);

/** `GET /start`: the confirmation page; the browser keeps the cookie it sets. */
function open(run: CaseRun, invocation: Invocation, browser: Browser, wayOn = false): Promise<string> {
  return request(run, invocation, { step: "GET /start", browser, wayOn }, async (flow) => {
    const page = await flow.confirm(linkQuery(browser), browser.url.origin);
    browser.cookies = [Cookie.parse(page.bindingCookie)?.cookieString() ?? ""];
    return "page";
  });
}

/** `POST /start`, the page's button with the page's fields and cookie: the browser is sent to Exact with a state. */
function press(run: CaseRun, invocation: Invocation, browser: Browser, wayOn = false): Promise<string> {
  return request(run, invocation, { step: "POST /start", browser, wayOn }, async (flow) => {
    const answer = await flow.start(linkQuery(browser), browser.cookies, browser.url.origin);
    browser.state = new URL(answer.location).searchParams.get("state") ?? undefined;
    return "redirect";
  });
}

/** The user consents at Exact, whose redirect brings the code and the browser's state to `GET /callback`. */
function finish(run: CaseRun, invocation: Invocation, browser: Browser): Promise<string> {
  const state = browser.state ?? "";
  // The attempt is over for the user whatever the callback answers.
  browser.state = undefined;
  return request(run, invocation, { step: "GET /callback", browser, wayOn: true }, async (flow) => {
    const code = run.world.authorize(run.connection);
    await flow.complete(await flow.accept({ code, state }, browser.cookies));
    return "completed";
  });
}

/**
 * What the person connecting does after the door's request, for a connection still NEW: finish
 * with the state the browser was sent to Exact with; else open the page if it never came, press,
 * and after `used` ask the operator for a new link and go through it. Each step is its own
 * invocation, none faulted; an answer off that way ends the round (the checker names it).
 */
async function userGoesOn(run: CaseRun, connection: CampaignConnection, item: ChainRecord): Promise<boolean> {
  if (connection !== run.connection || item.status !== ChainStatus.New) return false;
  const browser = browserOf(run);
  const step = async (send: (invocation: Invocation) => Promise<string>) => {
    const end = await run.invoke("recovery", send);
    return end.kind === "returned" ? end.value : undefined;
  };
  const openAndPress = async () => {
    if (browser.cookies.length === 0 && (await step((i) => open(run, i, browser, true))) !== "page") return;
    return step((i) => press(run, i, browser, true));
  };
  if (browser.state === undefined) {
    let pressed = await openAndPress();
    if (pressed === "used") {
      await run.invoke("recovery", (invocation) => newLink(run, invocation));
      pressed = await openAndPress();
    }
    if (pressed !== "redirect") return true;
  }
  await step((invocation) => finish(run, invocation, browser));
  return true;
}

async function linkMade(run: CaseRun): Promise<void> {
  const made = await run.invoke("setup", (invocation) => newLink(run, invocation));
  if (made.kind !== "returned") throw new Error(`${run.door.name} setup: no link`);
}

/**
 * C1. The confirmation page: a fresh link opened in the user's browser. A hang lets a link
 * preview (a chat client fetching the URL, its own cookie) open it meanwhile.
 */
export const connectPage: Door = {
  name: "connect page (GET /start)",
  mode: "code",
  setup: linkMade,
  act: (run, invocation) => open(run, invocation, browserOf(run)),
  compete: (run) =>
    run.invoke("competitor", (invocation) => open(run, invocation, { ...browserOf(run), cookies: [] })),
  operatorStep: userGoesOn,
};

/** C2. The button: the link's page shown in the user's browser, pressed. A hang lets a second press (a double click) in. */
export const connectButton: Door = {
  name: "connect button (POST /start)",
  mode: "code",
  async setup(run) {
    await linkMade(run);
    const shown = await run.invoke("setup", (invocation) => open(run, invocation, browserOf(run)));
    if (shown.kind !== "returned" || shown.value !== "page")
      throw new Error(`${run.door.name} setup: the link's page did not open`);
  },
  act: (run, invocation) => press(run, invocation, browserOf(run)),
  compete: (run) => run.invoke("competitor", (invocation) => press(run, invocation, browserOf(run))),
  operatorStep: userGoesOn,
};
