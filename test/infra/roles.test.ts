import { readFileSync } from "node:fs";
import type { CfnElement } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import type { IConstruct } from "constructs";
import { beforeAll, describe, expect, it } from "vitest";
import {
  appKey,
  ChainTable,
  connectionKey,
  grantsKey,
  guardKey,
  historyKey,
  nonceKey,
  totpClaimKey,
} from "../../lib/chain/table-definition.js";
import { BRANCH_KEY_STORE_LOGICAL_NAME, DEFAULT_BRANCH_KEY_ID } from "../../lib/crypto/branch-key-store.js";
import { createBrokerApp } from "../../lib/infra/broker-app.js";
import type { BrokerStack } from "../../lib/infra/broker-stack.js";
import { ItemKind } from "../../lib/infra/chain-table.js";
import { CLIENT_SECRET_PREFIX, COMBINED_SECRET_PREFIX, LOGIN_SECRET_PREFIX } from "../../lib/infra/names.js";

type Statement = { Effect: string; Action: string | string[]; Resource: unknown; Condition?: unknown };
type Resources = Record<string, { Type: string; Properties: Record<string, unknown> }>;
/** A statement as compared here: sorted actions, its resource(s) and its condition. */
type Summary = { actions: string[]; resource: unknown; condition?: unknown };

const ENV = { account: "123456789012", region: "eu-west-1" };
const secretArn = (prefix: string) => `arn:aws:secretsmanager:eu-west-1:123456789012:secret:${prefix}*`;

/** The app as `cdk synth` builds it (with `-c` context given), without bundling: IAM does not look at assets. */
function synth(context: Record<string, unknown> = {}): { stack: BrokerStack; template: Template } {
  const cdkJson = JSON.parse(readFileSync("cdk.json", "utf8")) as { context: Record<string, unknown> };
  const { stack } = createBrokerApp({
    app: { context: { ...cdkJson.context, ...context, "aws:cdk:bundling-stacks": [] } },
    stack: { env: ENV },
  });
  return { stack, template: Template.fromStack(stack) };
}

const list = (value: string | string[]): string[] => (Array.isArray(value) ? value : [value]);

/** Reads one synthesized stack's role policies. */
class Roles {
  constructor(
    readonly stack: BrokerStack,
    readonly template: Template,
  ) {}

  id(construct: IConstruct): string {
    return this.stack.getLogicalId(construct.node.defaultChild as CfnElement);
  }

  arnOf(construct: IConstruct) {
    return { "Fn::GetAtt": [this.id(construct), "Arn"] };
  }

  /** Every statement of the one policy attached to a role. */
  statementsOf(role: IConstruct): Summary[] {
    const policies = Object.values(this.template.toJSON().Resources as Resources).filter(
      (r) =>
        r.Type === "AWS::IAM::Policy" &&
        JSON.stringify(r.Properties.Roles) === JSON.stringify([{ Ref: this.id(role) }]),
    );
    const [policy, ...others] = policies;
    if (!policy || others.length > 0) throw new Error(`expected one policy on ${role.node.path}`);
    const statements = (policy.Properties.PolicyDocument as { Statement: Statement[] }).Statement;
    return statements.map((s) => {
      expect(s.Effect).toBe("Allow");
      return {
        actions: list(s.Action).sort(),
        resource: s.Resource,
        ...(s.Condition === undefined ? {} : { condition: s.Condition }),
      };
    });
  }

  /** Every statement of every role, with the role's name (for "who may …" questions). */
  allStatements(): Array<Summary & { role: string }> {
    const fns = this.stack.functions;
    return (
      [
        ["token-vend", fns.tokenVend],
        ["refresh", fns.refresh],
        ["refresh-worker", fns.refreshWorker],
        ["fallback-login", fns.fallbackLogin],
        ["connect", fns.connect],
      ] as const
    ).flatMap(([role, fn]) => this.statementsOf(fns.roleOf(fn)).map((s) => ({ role, ...s })));
  }
}

/** Items of these kinds only: the LeadingKeys condition the table's statements carry. */
const onKinds = (...kinds: ItemKind[]) => ({
  "ForAllValues:StringLike": { "dynamodb:LeadingKeys": kinds.map((kind) => `${kind}*`) },
});

/** The stack's branch key's items in the key store, and no other. */
const onBranchKey = { "ForAllValues:StringEquals": { "dynamodb:LeadingKeys": [DEFAULT_BRANCH_KEY_ID] } };

/** The statements every function has on the table: its chain, its app, guards, history. */
function chainStatements(table: unknown): Summary[] {
  return [
    {
      actions: ["dynamodb:GetItem", "dynamodb:UpdateItem"],
      resource: table,
      condition: onKinds(ItemKind.Connection, ItemKind.App),
    },
    {
      actions: ["dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem"],
      resource: table,
      condition: onKinds(ItemKind.Guard),
    },
    { actions: ["dynamodb:UpdateItem"], resource: table, condition: onKinds(ItemKind.History) },
  ];
}

describe("each function's role", () => {
  let roles: Roles;
  let combined: Roles;

  beforeAll(() => {
    const base = synth();
    roles = new Roles(base.stack, base.template);
    const during = synth({ combinedSecrets: "true" });
    combined = new Roles(during.stack, during.template);
  }, 60_000);

  /** Per function, in the order the stack grants them: exactly these statements, nothing more. */
  function expected(r: Roles, clientSecrets: unknown) {
    const { stack } = r;
    const fns = stack.functions;
    const table = r.arnOf(stack.chains.table);
    const logs = (name: string) => ({
      actions: ["logs:CreateLogStream", "logs:PutLogEvents"],
      resource: r.arnOf(fns.node.findChild(`${name}Logs`)),
    });
    // Unwraps branch keys and opens tokens sealed before them; no GenerateDataKey: the
    // hierarchical keyring makes each token's data key itself.
    const keyring = [
      { actions: ["kms:Decrypt"], resource: r.arnOf(stack.tokenKey.key) },
      {
        actions: ["dynamodb:GetItem"],
        resource: r.arnOf(stack.branchKeys.table),
        condition: onBranchKey,
      },
    ];
    const readClientSecrets = { actions: ["secretsmanager:GetSecretValue"], resource: clientSecrets };
    const events = { actions: ["events:PutEvents"], resource: r.arnOf(stack.eventBus) };
    const startHeal = { actions: ["lambda:InvokeFunction"], resource: r.arnOf(fns.fallbackLogin) };
    return {
      tokenVend: [
        logs("TokenVend"),
        ...chainStatements(table),
        // Who may get which connection (lib/auth/): read only.
        { actions: ["dynamodb:GetItem"], resource: table, condition: onKinds(ItemKind.Grants) },
        ...keyring,
        readClientSecrets,
        events,
        startHeal,
      ],
      refresh: [
        logs("Refresh"),
        // Which chains are due, on the sparse index only.
        {
          actions: ["dynamodb:Query"],
          resource: { "Fn::Join": ["", [table, `/index/${ChainTable.dueIndex.name}`]] },
        },
        // The claim: one conditional UpdateItem on each queued chain's own item.
        { actions: ["dynamodb:UpdateItem"], resource: table, condition: onKinds(ItemKind.Connection) },
        // Its cursor: how far the due index is queued.
        {
          actions: ["dynamodb:GetItem", "dynamodb:UpdateItem"],
          resource: table,
          condition: onKinds(ItemKind.Dispatch),
        },
        // SendMessageBatch, authorized as SendMessage; the queue's URL comes from the environment.
        { actions: ["sqs:SendMessage"], resource: r.arnOf(fns.refreshQueue) },
        // The table's key as DynamoDB uses it for the caller, and no other way: no token is opened here.
        {
          actions: ["kms:Decrypt"],
          resource: r.arnOf(stack.tokenKey.key),
          condition: {
            StringEquals: {
              "kms:ViaService": { "Fn::Join": ["", ["dynamodb.eu-west-1.", { Ref: "AWS::URLSuffix" }]] },
            },
          },
        },
      ],
      refreshWorker: [
        logs("RefreshWorker"),
        // What Lambda's SQS poller calls with the function's role (the event source mapping).
        {
          actions: [
            "sqs:ChangeMessageVisibility",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:GetQueueUrl",
            "sqs:ReceiveMessage",
          ],
          resource: r.arnOf(fns.refreshQueue),
        },
        ...chainStatements(table),
        ...keyring,
        readClientSecrets,
        events,
        startHeal,
      ],
      fallbackLogin: [
        logs("FallbackLogin"),
        ...chainStatements(table),
        {
          actions: ["dynamodb:GetItem", "dynamodb:UpdateItem"],
          resource: table,
          condition: onKinds(ItemKind.TotpClaim),
        },
        ...keyring,
        readClientSecrets,
        { actions: ["secretsmanager:GetSecretValue"], resource: secretArn(LOGIN_SECRET_PREFIX) },
        events,
        {
          actions: ["sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SendMessage"],
          resource: r.arnOf(fns.healFailures),
        },
      ],
      connect: [
        logs("Connect"),
        ...chainStatements(table),
        {
          actions: ["dynamodb:GetItem", "dynamodb:PutItem"],
          resource: table,
          condition: onKinds(ItemKind.Nonce),
        },
        ...keyring,
        readClientSecrets,
        { actions: ["secretsmanager:GetSecretValue"], resource: { Ref: r.id(stack.secrets.linkSigningKey) } },
      ],
    };
  }

  describe.each([
    ["a new stack: client secrets only", () => roles, () => secretArn(CLIENT_SECRET_PREFIX)],
    [
      "a stack moving combined secrets (combinedSecrets)",
      () => combined,
      () => [secretArn(CLIENT_SECRET_PREFIX), secretArn(COMBINED_SECRET_PREFIX)],
    ],
  ])("%s", (_label, which, clientSecrets) => {
    it("token-vend: its chain and app, guards, history, grants (read), keyring, client secrets, events, start a heal", () => {
      const r = which();
      expect(r.statementsOf(r.stack.functions.roleOf(r.stack.functions.tokenVend))).toEqual(
        expected(r, clientSecrets()).tokenVend,
      );
    });

    it("refresh: Query on the sparse index, the claim on chain items, sending to the queue; no token, no secret", () => {
      const r = which();
      expect(r.statementsOf(r.stack.functions.roleOf(r.stack.functions.refresh))).toEqual(
        expected(r, clientSecrets()).refresh,
      );
    });

    it("refresh-worker: its queue's messages and token-vend's rights on chains, keyring, client secrets, events, heals", () => {
      const r = which();
      expect(r.statementsOf(r.stack.functions.roleOf(r.stack.functions.refreshWorker))).toEqual(
        expected(r, clientSecrets()).refreshWorker,
      );
    });

    it("fallback-login: TOTP claims, login credentials, its failure queue; no heal of its own", () => {
      const r = which();
      expect(r.statementsOf(r.stack.functions.roleOf(r.stack.functions.fallbackLogin))).toEqual(
        expected(r, clientSecrets()).fallbackLogin,
      );
    });

    it("connect: its link nonces and the link key; no TOTP claims, no login credentials, no events, no heals", () => {
      const r = which();
      expect(r.statementsOf(r.stack.functions.roleOf(r.stack.functions.connect))).toEqual(
        expected(r, clientSecrets()).connect,
      );
    });
  });

  describe("the branch key setup (custom resource)", () => {
    it("setup: its logs; Get and Put on the branch key's items; on the key only the KMS calls createKey makes, under its context", () => {
      const { stack } = roles;
      const keys = stack.branchKeys;
      expect(roles.statementsOf(keys.setupRole)).toEqual([
        {
          actions: ["logs:CreateLogStream", "logs:PutLogEvents"],
          resource: roles.arnOf(keys.node.findChild("SetupLogs")),
        },
        // createKey's TransactWriteItems is authorized as one PutItem per Put.
        {
          actions: ["dynamodb:GetItem", "dynamodb:PutItem"],
          resource: roles.arnOf(keys.table),
          condition: onBranchKey,
        },
        {
          actions: ["kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncryptFrom", "kms:ReEncryptTo"],
          resource: roles.arnOf(stack.tokenKey.key),
          condition: {
            StringEquals: {
              "kms:EncryptionContext:tablename": BRANCH_KEY_STORE_LOGICAL_NAME,
              "kms:EncryptionContext:branch-key-id": DEFAULT_BRANCH_KEY_ID,
            },
          },
        },
      ]);
    });

    it("provider framework: its logs, invoking and describing the setup function; nothing else", () => {
      const keys = roles.stack.branchKeys;
      const setup = roles.arnOf(keys.setupFunction);
      expect(roles.statementsOf(keys.providerRole)).toEqual([
        {
          actions: ["logs:CreateLogStream", "logs:PutLogEvents"],
          resource: roles.arnOf(keys.node.findChild("ProviderLogs")),
        },
        { actions: ["lambda:InvokeFunction"], resource: [setup, { "Fn::Join": ["", [setup, ":*"]] }] },
        { actions: ["lambda:GetFunction"], resource: setup },
      ]);
    });

    it("lets only the setup write to the key store, and the refresh dispatcher not even read it", () => {
      const store = JSON.stringify(roles.arnOf(roles.stack.branchKeys.table));
      const onStore = roles
        .allStatements()
        .filter((s) => JSON.stringify(s.resource) === store)
        .map((s) => ({ role: s.role, actions: s.actions }));
      expect(onStore).toEqual(
        ["token-vend", "refresh-worker", "fallback-login", "connect"].map((role) => ({
          role,
          actions: ["dynamodb:GetItem"],
        })),
      );
    });
  });

  it("only fallback-login can read login credentials, in either kind of stack", () => {
    for (const r of [roles, combined]) {
      const readers = r
        .allStatements()
        .filter((s) => JSON.stringify(s.resource).includes(LOGIN_SECRET_PREFIX))
        .map((s) => s.role);
      expect(readers).toEqual(["fallback-login"]);
    }
  });

  it("no role reads combined secrets unless the stack is deployed with combinedSecrets", () => {
    expect(JSON.stringify(roles.template.toJSON())).not.toContain(COMBINED_SECRET_PREFIX);
    const readers = combined
      .allStatements()
      .filter((s) => JSON.stringify(s.resource).includes(COMBINED_SECRET_PREFIX))
      .map((s) => s.role);
    expect(readers).toEqual(["token-vend", "refresh-worker", "fallback-login", "connect"]);
  });

  it("lets only refresh send to the refresh queue, and only the refresh-worker take from it", () => {
    const queue = JSON.stringify(roles.arnOf(roles.stack.functions.refreshQueue));
    const onQueue = roles
      .allStatements()
      .filter((s) => JSON.stringify(s.resource) === queue)
      .map((s) => ({ role: s.role, sends: s.actions.includes("sqs:SendMessage") }));
    expect(onQueue).toEqual([
      { role: "refresh", sends: true },
      { role: "refresh-worker", sends: false },
    ]);
    const deadLetters = JSON.stringify(roles.arnOf(roles.stack.functions.refreshDeadLetters));
    expect(roles.allStatements().filter((s) => JSON.stringify(s.resource) === deadLetters)).toEqual([]);
  });

  it("every statement on the table's items names the kinds of items it may touch", () => {
    const tableArn = JSON.stringify(roles.arnOf(roles.stack.chains.table));
    const onItems = roles.allStatements().filter((s) => JSON.stringify(s.resource) === tableArn);
    expect(onItems.length).toBeGreaterThan(0);
    for (const statement of onItems) {
      expect(statement.condition, `${statement.role}: ${statement.actions.join(", ")}`).toMatchObject({
        "ForAllValues:StringLike": { "dynamodb:LeadingKeys": expect.any(Array) },
      });
    }
  });

  it("lets no function but token-vend near the grants, and token-vend only read them", () => {
    const onGrants = roles
      .allStatements()
      .filter((s) => JSON.stringify(s.condition ?? {}).includes(ItemKind.Grants))
      .map((s) => ({ role: s.role, actions: s.actions }));
    expect(onGrants).toEqual([{ role: "token-vend", actions: ["dynamodb:GetItem"] }]);
  });

  it("names each kind of item by the prefix its key builder writes", () => {
    expect(connectionKey("acme")).toBe(`${ItemKind.Connection}acme`);
    expect(guardKey("app", "user")).toMatch(new RegExp(`^${ItemKind.Guard}`));
    expect(nonceKey("n")).toBe(`${ItemKind.Nonce}n`);
    expect(totpClaimKey("Someone@Example.com")).toMatch(new RegExp(`^${ItemKind.TotpClaim}`));
    expect(appKey("app", "https://start.exactonline.nl")).toMatch(new RegExp(`^${ItemKind.App}`));
    expect(historyKey("acme", "i", 3)).toMatch(new RegExp(`^${ItemKind.History}`));
    expect(grantsKey("acme")).toBe(`${ItemKind.Grants}acme`);
  });
});
