import type { Logger } from "@aws-lambda-powertools/logger";
import { ParseError } from "@aws-lambda-powertools/parser";
import { parser } from "@aws-lambda-powertools/parser/middleware";
import { LambdaFunctionUrlSchema } from "@aws-lambda-powertools/parser/schemas";
import type { LambdaFunctionUrlEvent } from "@aws-lambda-powertools/parser/types";
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import middy from "@middy/core";
import type { Broker } from "../broker.js";
import { BrokerError } from "../errors.js";
import { type ConnectFlow, createConnectFlow } from "../onboarding/connect-flow.js";
import {
  confirmationPage,
  failurePage,
  type HtmlAnswer,
  methodNotAllowedPage,
  notFoundPage,
  redirectAnswer,
  seededPage,
  withCookies,
} from "../onboarding/connect-pages.js";
import { ConnectRefused } from "../onboarding/connect-refused.js";
import { ConnectPath, normalizeConnectUrl } from "../onboarding/connect-url.js";
import { formFields } from "../onboarding/form-body.js";
import type { LinkKeySource } from "../onboarding/link-key-source.js";
import { invocationDeadlineMs } from "./deadline.js";

/** What {@link createConnectHandler} needs; I/O defaults come from the broker. */
export interface ConnectHandlerDeps {
  readonly broker: Broker;
  readonly keys: LinkKeySource;
  readonly logger: Logger;
  /** For the single-use markers. @default a new DynamoDBClient */
  readonly dynamo?: DynamoDBClient;
  /** @default the broker's clock */
  readonly now?: () => number;
  /**
   * The public URL of this function, when it differs from the host a request arrives on
   * (a custom domain in front of the Function URL). @default `<x-forwarded-proto>://<host>`
   */
  readonly connectUrl?: string;
}

/** `<proto>://<host>` of the request: what the connection's redirect URI must be under. */
function requestConnectUrl(event: LambdaFunctionUrlEvent): string {
  const host = event.headers.host ?? event.requestContext.domainName;
  // A Function URL is always https and says so; the local adapter says http.
  const proto = event.headers["x-forwarded-proto"] === "http" ? "http" : "https";
  return `${proto}://${host}`;
}

/**
 * An error as the page it becomes (bad input 400/403/410, never a 500 for it), logged without
 * the query, body or cookies (they hold codes, signatures and the browser binding).
 */
function failureAnswer(logger: Logger, path: string | undefined, error: unknown): HtmlAnswer {
  const answer = failurePage(error);
  if (error instanceof ConnectRefused) {
    logger.warn("connect request refused", {
      path,
      reason: error.reason,
      subject: error.subject,
      connectionId: error.connectionId,
      statusCode: answer.statusCode,
    });
  } else if (error instanceof BrokerError || error instanceof ParseError) {
    logger.warn("connect request failed", {
      path,
      errorType: error.name,
      errorMessage:
        error instanceof BrokerError ? error.message : "event does not match the Function URL schema",
      statusCode: answer.statusCode,
    });
  } else {
    logger.error("unexpected failure in the connect function", { path, error: error as Error });
  }
  return answer;
}

/** The one place where failures leave the connect function: every error becomes an HTML page. */
function errorPages(options: {
  readonly logger: Logger;
}): middy.MiddlewareObj<LambdaFunctionUrlEvent, HtmlAnswer> {
  const onError: middy.MiddlewareFn<LambdaFunctionUrlEvent, HtmlAnswer> = async (request) => {
    request.response = failureAnswer(options.logger, request.event?.rawPath, request.error);
  };
  return { onError };
}

/**
 * The connect Lambda behind a Function URL: `GET /start` (a one-time link) shows a confirmation
 * page and sets the browser-binding cookie, its button's `POST /start` (with that cookie)
 * redirects to Exact with a state bound to it, `GET /callback`
 * (Exact's redirect) seeds the chain. Behaviour lives in {@link ConnectFlow}.
 */
export function createConnectHandler(deps: ConnectHandlerDeps) {
  const flow = createConnectFlow(deps.broker, {
    keys: deps.keys,
    log: deps.logger,
    ...(deps.dynamo ? { dynamo: deps.dynamo } : {}),
    ...(deps.now ? { now: deps.now } : {}),
  });
  const fixedConnectUrl =
    deps.connectUrl === undefined
      ? undefined
      : normalizeConnectUrl(deps.connectUrl, deps.broker.config.allowLoopback);

  return middy<LambdaFunctionUrlEvent, HtmlAnswer>()
    .use(errorPages({ logger: deps.logger }))
    .use(parser({ schema: LambdaFunctionUrlSchema }))
    .handler(async (event, context) =>
      route(
        flow,
        event,
        fixedConnectUrl ?? requestConnectUrl(event),
        invocationDeadlineMs(context, deps.now ?? deps.broker.deps.now),
        deps.logger,
      ),
    );
}

async function route(
  flow: ConnectFlow,
  event: LambdaFunctionUrlEvent,
  connectUrl: string,
  deadlineMs: number | undefined,
  logger: Logger,
): Promise<HtmlAnswer> {
  const path = event.rawPath;
  const method = event.requestContext.http.method;
  const query = event.queryStringParameters ?? {};
  if (path === ConnectPath.Start) {
    // HEAD too: a link preview may only ask for the headers, and it must spend nothing either.
    // Both set the browser-binding cookie, which the POST requires.
    if (method === "GET" || method === "HEAD") return confirmationPage(await flow.confirm(query, connectUrl));
    if (method === "POST") {
      return redirectAnswer((await flow.start(formFields(event), event.cookies, connectUrl)).location);
    }
    return methodNotAllowedPage("GET, HEAD, POST");
  }
  if (path === ConnectPath.Callback) {
    if (method !== "GET") return methodNotAllowedPage("GET");
    const accepted = await flow.accept(query, event.cookies);
    // From here the attempt is over (its state is used up), so every answer clears its cookie.
    let page: HtmlAnswer;
    try {
      page = seededPage(await flow.complete(accepted, deadlineMs), accepted.connectionId);
    } catch (error) {
      page = failureAnswer(logger, path, error);
    }
    return withCookies(page, [accepted.clearCookie]);
  }
  return notFoundPage();
}
