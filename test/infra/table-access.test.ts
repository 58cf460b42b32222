import { readFileSync } from "node:fs";
import type { AttributeValue } from "@aws-sdk/client-dynamodb";
import type { CfnElement } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import type { IConstruct } from "constructs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BrokerOverrides } from "../../lib/broker.js";
import { ChainStatus } from "../../lib/chain/chain-record.js";
import { ChainTable } from "../../lib/chain/table-definition.js";
import { createBrokerApp } from "../../lib/infra/broker-app.js";
import { FunctionName } from "../../lib/infra/bundling.js";
import { NonceMarker, NonceStore } from "../../lib/onboarding/nonce-store.js";
import { type Fixture, startFixture } from "../support/fixture.js";
import { MemoryRefreshQueue } from "../support/memory-refresh-queue.js";

// The roles' table statements (lib/infra/broker-functions.ts) against what the code does: each
// function's doors run against dynalite and the simulator, every DynamoDB call they make is
// recorded with the item it touches, and each must be one its function's role allows (action,
// resource, dynamodb:LeadingKeys). A call a door gains without a grant fails here, not in AWS.

type Statement = {
  Action: string | string[];
  Resource: unknown;
  Condition?: Record<string, Record<string, string[]>>;
};
type Resources = Record<string, { Type: string; Properties: Record<string, unknown> }>;

/** One DynamoDB call: its action, and the partition key (or index) it touched. */
interface TableCall {
  readonly fn: FunctionName;
  readonly action: string;
  /** The item's partition key; for a Query, `index/<name>`. */
  readonly target: string;
}

/** Seconds from a chain's start until its refresh window is open. */
const WINDOW = 572;
/** Heals run in fallback-login: token-vend and the refresh-worker only trigger them. */
const NO_HEAL: BrokerOverrides = {
  healTrigger: { trigger: () => undefined, handedOff: async () => undefined },
  vendOptions: { waitMs: 1_000 },
};

let fx: Fixture;
let current: FunctionName | undefined;
const calls: TableCall[] = [];
let allows: (fn: FunctionName, action: string, target: string) => boolean;

/** Runs `work` as function `fn`: every table call it makes is recorded under that name. */
async function as<T>(fn: FunctionName, work: () => Promise<T>): Promise<T> {
  current = fn;
  try {
    return await work();
  } finally {
    current = undefined;
  }
}

function keyOf(input: Record<string, unknown>): string {
  if (typeof input.IndexName === "string") return `index/${input.IndexName}`;
  const key = (input.Key ?? input.Item) as Record<string, AttributeValue> | undefined;
  return key?.[ChainTable.partitionKey]?.S ?? "(no key)";
}

/** The synthesized role statements of each function, as a predicate over one call. */
function rolePolicies(): typeof allows {
  const cdkJson = JSON.parse(readFileSync("cdk.json", "utf8")) as { context: Record<string, unknown> };
  const { stack } = createBrokerApp({
    app: { context: { ...cdkJson.context, "aws:cdk:bundling-stacks": [] } },
    stack: { env: { account: "123456789012", region: "eu-west-1" } },
  });
  const resources = Template.fromStack(stack).toJSON().Resources as Resources;
  const id = (c: IConstruct) => stack.getLogicalId(c.node.defaultChild as CfnElement);
  const table = JSON.stringify({ "Fn::GetAtt": [id(stack.chains.table), "Arn"] });
  const fns = stack.functions;
  const byName = {
    [FunctionName.TokenVend]: fns.tokenVend,
    [FunctionName.Refresh]: fns.refresh,
    [FunctionName.RefreshWorker]: fns.refreshWorker,
    [FunctionName.FallbackLogin]: fns.fallbackLogin,
    [FunctionName.Connect]: fns.connect,
  };
  const statementsOf = (fn: FunctionName): Statement[] =>
    Object.values(resources)
      .filter(
        (r) =>
          r.Type === "AWS::IAM::Policy" &&
          JSON.stringify(r.Properties.Roles) === JSON.stringify([{ Ref: id(fns.roleOf(byName[fn])) }]),
      )
      .flatMap((r) => (r.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
  // IAM's StringLike: `*` matches any run of characters.
  const like = (pattern: string, value: string) =>
    new RegExp(
      `^${pattern
        .split("*")
        .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
        .join(".*")}$`,
    ).test(value);
  return (fn, action, target) =>
    statementsOf(fn).some((s) => {
      const actions = Array.isArray(s.Action) ? s.Action : [s.Action];
      if (!actions.includes(action)) return false;
      const resource = JSON.stringify(s.Resource);
      if (target.startsWith("index/")) return resource.includes(`/${target}`);
      if (resource !== table) return false;
      const leading = s.Condition?.["ForAllValues:StringLike"]?.["dynamodb:LeadingKeys"];
      return leading === undefined || leading.some((pattern) => like(pattern, target));
    });
}

/** A user of the simulator the fixture's connections can be seeded with. */
function addUser(name: string): string {
  const username = `user-${name}@example.com`;
  fx.stack.sim.addUser({
    username,
    password: `pw-sEcReT-${name}-0123456789`,
    totpSecret: "JBSWY3DPEHPK3PXP",
  });
  return username;
}

function code(connection: { clientId: string; redirectUri: string }, username: string): string {
  return fx.stack.sim.authorize({
    clientId: connection.clientId,
    username,
    redirectUri: connection.redirectUri,
  });
}

/**
 * What connect does with the table for one link (lib/onboarding/connect-flow.ts): look at and
 * claim its nonce's markers, read the connection, then seed.
 */
async function connect(connectionId: string, seedCode: string, nonce: string): Promise<void> {
  const nonces = new NonceStore({ tableName: fx.stack.tableName, client: fx.stack.dynamo.client });
  const nowMs = fx.clock.now();
  const validUntilEpochSec = Math.floor(nowMs / 1000) + 900;
  for (const marker of [NonceMarker.Opened, NonceMarker.Completed]) {
    await nonces.isClaimed(nonce, marker);
    await nonces.claim({ nonce, marker, connectionId, validUntilEpochSec, nowMs });
  }
  await fx.broker().deps.store.get(connectionId);
  await fx
    .broker()
    .onboarding.seed(connectionId, seedCode)
    .catch(() => undefined);
}

beforeAll(async () => {
  allows = rolePolicies();
  fx = await startFixture({ seed: false });
  fx.stack.dynamo.client.middlewareStack.add(
    (next, context) => async (args) => {
      if (current !== undefined) {
        calls.push({
          fn: current,
          action: `dynamodb:${String(context.commandName).replace(/Command$/, "")}`,
          target: keyOf(args.input as Record<string, unknown>),
        });
      }
      return next(args);
    },
    { step: "initialize", name: "recordTableCalls" },
  );
  const conn = fx.conn;
  const other = addUser("other");

  // connect: a first consent (guard claimed), a re-consent as another user (old guard released),
  // and a consent of a user another connection holds (the chain handed over to it).
  await as(FunctionName.Connect, () => connect(conn.connectionId, code(conn, conn.username), "n1"));
  await as(FunctionName.Connect, () => connect(conn.connectionId, code(conn, other), "n2"));
  const twin = await fx.stack.addConnection("twin", {
    clientId: conn.clientId,
    username: "user-twin@example.com",
  });
  await as(FunctionName.Connect, () => connect(twin.connectionId, code(twin, other), "n3"));

  // token-vend: a cached answer, a refresh at the window, and a consent whose /current/Me failed,
  // finished by the vend (its identity check claims the guard).
  await as(FunctionName.TokenVend, () => fx.broker(NO_HEAL).vend.vend(conn.connectionId, 30));
  fx.clock.advance(WINDOW);
  await as(FunctionName.TokenVend, () => fx.broker(NO_HEAL).vend.vend(conn.connectionId, 30));
  const pending = await fx.stack.addConnection("pending");
  fx.stack.sim.addFault({
    kind: "status",
    status: 503,
    endpoint: "me",
    clientId: pending.clientId,
    count: 1,
  });
  await as(FunctionName.Connect, () => connect(pending.connectionId, code(pending, pending.username), "n4"));
  fx.clock.advance(10);
  await as(FunctionName.TokenVend, () => fx.broker(NO_HEAL).vend.vend(pending.connectionId, 30));

  // refresh: the schedule's dispatch of the due chains (each queued, then claimed); refresh-worker:
  // their work when the queue hands them over, one of them finishing another pending consent.
  const later = await fx.stack.addConnection("later");
  fx.stack.sim.addFault({ kind: "status", status: 503, endpoint: "me", clientId: later.clientId, count: 1 });
  await as(FunctionName.Connect, () => connect(later.connectionId, code(later, later.username), "n5"));
  fx.clock.advance(10);
  const queue = new MemoryRefreshQueue();
  const dispatch = fx.broker({ ...NO_HEAL, refreshQueue: queue }).dispatch;
  if (!dispatch) throw new Error("a broker with a refresh queue dispatches");
  await as(FunctionName.Refresh, () => dispatch.run());
  // SQS holds each message back until its chain is due.
  fx.clock.advance(Math.max(0, ...queue.sent.map((message) => message.delaySeconds)));
  const messages = queue.drain();
  await as(FunctionName.RefreshWorker, () =>
    fx.broker(NO_HEAL).refreshWorker.run(messages, fx.clock.now() + 55_000),
  );

  // fallback-login: the heal of a chain Exact rotated behind a lost answer.
  fx.stack.sim.addFault({
    kind: "rotate_then_drop",
    endpoint: "token",
    clientId: pending.clientId,
    count: 1,
  });
  fx.clock.advance(WINDOW);
  await as(FunctionName.TokenVend, () =>
    fx
      .broker(NO_HEAL)
      .vend.vend(pending.connectionId, 30)
      .catch(() => undefined),
  );
  fx.clock.advance(3);
  await as(FunctionName.TokenVend, () =>
    fx
      .broker(NO_HEAL)
      .vend.vend(pending.connectionId, 30)
      .catch(() => undefined),
  );
  await as(FunctionName.FallbackLogin, () => fx.broker().heal.heal(pending.connectionId));
  // …and an implicit-only connection's first login (its identity check claims the guard).
  const implicit = await fx.stack.addConnection("implicit", { mode: "implicit" });
  await as(FunctionName.FallbackLogin, () => fx.broker().heal.heal(implicit.connectionId));
}, 120_000);

afterAll(async () => {
  await fx?.close();
});

describe("the functions' table calls", () => {
  it("ran the scenarios they are judged on", async () => {
    expect((await fx.stack.store().get("pending"))?.status).toBe(ChainStatus.Active);
    expect((await fx.stack.store().get("later"))?.status).toBe(ChainStatus.Active);
    expect((await fx.stack.store().get("implicit"))?.status).toBe(ChainStatus.Active);
    const made = (fn: FunctionName, action: string, prefix: string) =>
      calls.some((c) => c.fn === fn && c.action === action && c.target.startsWith(prefix));
    // The paths that need more than the chain's own item.
    expect(made(FunctionName.Connect, "dynamodb:PutItem", "NONCE#")).toBe(true);
    expect(made(FunctionName.Connect, "dynamodb:DeleteItem", "GUARD#")).toBe(true);
    expect(made(FunctionName.TokenVend, "dynamodb:PutItem", "GUARD#")).toBe(true);
    expect(made(FunctionName.Refresh, "dynamodb:Query", `index/${ChainTable.dueIndex.name}`)).toBe(true);
    expect(made(FunctionName.Refresh, "dynamodb:UpdateItem", "CONN#")).toBe(true);
    expect(made(FunctionName.RefreshWorker, "dynamodb:PutItem", "GUARD#")).toBe(true);
    expect(made(FunctionName.FallbackLogin, "dynamodb:UpdateItem", "TOTP#")).toBe(true);
    expect(made(FunctionName.FallbackLogin, "dynamodb:PutItem", "GUARD#")).toBe(true);
  });

  it.each(Object.values(FunctionName))("%s makes only calls its role allows", (fn) => {
    const mine = calls.filter((c) => c.fn === fn);
    expect(mine.length).toBeGreaterThan(0);
    const refused = [
      ...new Set(mine.filter((c) => !allows(fn, c.action, c.target)).map((c) => `${c.action} ${c.target}`)),
    ];
    expect(refused).toEqual([]);
  });
});
