import { parseArgs } from "node:util";
import {
  CreateTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  ResourceInUseException,
  UpdateTimeToLiveCommand,
} from "@aws-sdk/client-dynamodb";
import { type Broker, createBroker } from "../broker.js";
import { ConnectionMode } from "../chain/chain-record.js";
import { ChainStore } from "../chain/chain-store.js";
import { ChainTable, createTableInput } from "../chain/table-definition.js";
import { loadConfig } from "../config.js";
import { BrokerError, ConnectionNotFound, ValidationError } from "../errors.js";
import { checkBaseUrl } from "../exact/base-url.js";
import { OneExactIdentityDriver } from "../exact/login/one-exact-identity-driver.js";
import { CONNECTION_ID_PATTERN } from "../handlers/events.js";
import { CLIENT_SECRET_PREFIX, clientSecretName } from "../infra/names.js";
import { createConnectFlow } from "../onboarding/connect-flow.js";
import { createLinkKeySource } from "../onboarding/link-key-source.js";
import { createSecretSource, type SecretSource } from "../secrets/secret-source.js";
import {
  createFileSecretWriter,
  createSecretsManagerWriter,
  type SecretWriter,
} from "../secrets/secret-writer.js";
import { parseDivision, setDivision } from "./division-command.js";
import { ExitCode, exitCodeFor } from "./exit-codes.js";
import { GRANT_USAGE, isGrantCommand, runGrantCommand } from "./grant-commands.js";
import { parseHistoryLimit, showHistory } from "./history-command.js";
import { IMPORT_USAGE, importConnection, readRefreshToken, type TokenInput } from "./import-command.js";
import { describeWrites, setSecret } from "./secret-command.js";
import { type Prompt, readSecretInput } from "./secret-input.js";
import { formatStatus, statusReport } from "./status-report.js";

/** Where the CLI writes and what it reads; injected so tests run it in-process. */
export interface CliIo {
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
  readonly env: NodeJS.ProcessEnv;
  /** Builds the broker; tests pass one wired to dynalite and the simulator. */
  readonly broker?: (env: NodeJS.ProcessEnv) => Broker;
  readonly dynamo?: DynamoDBClient;
  /** Asks for secret fields (`connection add --prompt-secret`); tests pass canned answers. */
  readonly prompt?: Prompt;
  /** Writes a connection's secrets; default: LOCAL_SECRETS_FILE, else Secrets Manager. */
  readonly secretWriter?: SecretWriter;
  /** Reads a connection's secrets (`connection set-secret`); default: as the functions do. */
  readonly secretSource?: SecretSource;
  /** Standard input (`connection import --refresh-token-file -`); default: the process's. */
  readonly stdin?: TokenInput;
}

export const USAGE = `exact-broker: operate the Exact Online token broker

  exact-broker table create
  exact-broker connection add --id ID --client-id CLIENT_ID --base-url URL --redirect-uri URL
                              [--secret-id SECRET_ID] [--secret-file FILE | --prompt-secret] [--mode code|implicit]
                              [--division N]
  exact-broker connection set-secret --id ID [--secret-file FILE | --prompt-secret]
  exact-broker connection set-division --id ID --division N
  exact-broker connection list
  exact-broker connection remove --id ID
  exact-broker connection seed --id ID --code AUTHORIZATION_CODE
${IMPORT_USAGE}
  exact-broker connect --id ID [--connect-url URL]
  exact-broker heal --id ID
  exact-broker vend --id ID [--min-validity SECONDS]
  exact-broker status --id ID [--json]
${GRANT_USAGE}
  exact-broker history --id ID [--json] [--limit N]

Environment: TABLE_NAME (required), KMS_KEY_ARN or LOCAL_ENCRYPTION_KEY, with KMS_KEY_ARN
BRANCH_KEY_STORE_TABLE_NAME and BRANCH_KEY_ID (the stack's outputs of those names), LOCAL_SECRETS_FILE
(locally), EXACT_ALLOW_LOOPBACK=1 (simulator), AWS_ENDPOINT_URL_DYNAMODB (dynalite),
LINK_SIGNING_SECRET_ID and CONNECT_URL (connect), FALLBACK_LOGIN_FUNCTION_NAME (heals a vend
triggers; \`heal\` itself logs in from this machine), TOKEN_PACKING=off (while the stack runs with
-c tokenPacking=false: an upgrade from, or a rollback to, a release before token packing).
Exit codes: 0 done, 2 bad input or usage, 3 not found, 4 refused, 5 try again later.`;

const OPTIONS = {
  id: { type: "string" },
  "client-id": { type: "string" },
  "base-url": { type: "string" },
  "redirect-uri": { type: "string" },
  "secret-id": { type: "string" },
  "secret-file": { type: "string" },
  "prompt-secret": { type: "boolean" },
  mode: { type: "string" },
  division: { type: "string" },
  code: { type: "string" },
  "refresh-token-file": { type: "string" },
  replace: { type: "boolean" },
  "connect-url": { type: "string" },
  "min-validity": { type: "string" },
  json: { type: "boolean" },
  principal: { type: "string" },
  limit: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>["values"];

function required(values: Values, name: keyof Values & string): string {
  const value = values[name];
  if (typeof value !== "string" || value === "") throw new ValidationError(`--${name} is required`);
  return value;
}

function connectionId(values: Values): string {
  const id = required(values, "id");
  if (!CONNECTION_ID_PATTERN.test(id)) {
    throw new ValidationError(
      `--id "${id}" must be 1-64 characters of A-Z a-z 0-9 . _ - starting with a letter or digit`,
    );
  }
  return id;
}

function redirectUri(raw: string, allowLoopback: boolean): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ValidationError("--redirect-uri is not a URL");
  }
  const loopback = allowLoopback && ["127.0.0.1", "localhost"].includes(url.hostname);
  if (url.protocol !== "https:" && !loopback)
    throw new ValidationError("--redirect-uri must be an https URL");
  return url.toString();
}

/**
 * The command as an error may repeat it: command words as they are, any other argument as
 * `<argument>` (a token typed after the command must not be echoed into a log).
 */
function shownCommand(command: string): string {
  return command
    .split(" ")
    .map((word) => (/^[a-z][a-z-]{0,31}$/.test(word) ? word : "<argument>"))
    .join(" ");
}

/** Runs one command; returns the exit code. Never prints a refresh token. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  let parsed: { values: Values; positionals: string[] };
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    io.err(`${(error as Error).message}\n\n${USAGE}`);
    return ExitCode.BadInput;
  }
  const { values, positionals } = parsed;
  const command = positionals.join(" ");
  if (values.help || command === "" || command === "help") {
    io.out(USAGE);
    return values.help || command === "help" ? ExitCode.Done : ExitCode.BadInput;
  }
  try {
    return await dispatch(command, values, io);
  } catch (error) {
    const code = exitCodeFor(error);
    const message =
      error instanceof BrokerError ? `${error.name}: ${error.message}` : `error: ${(error as Error).message}`;
    const retry =
      error instanceof BrokerError && error.retryAfterSeconds !== undefined
        ? ` (try again in ${error.retryAfterSeconds} s)`
        : "";
    io.err(message + retry);
    return code;
  }
}

async function dispatch(command: string, values: Values, io: CliIo): Promise<number> {
  const config = () => loadConfig(io.env);
  const store = () =>
    new ChainStore({ tableName: config().tableName, client: io.dynamo ?? new DynamoDBClient({}) });
  // The CLI runs heals itself (an operator's `heal`), so it carries the login driver.
  const broker = () =>
    (
      io.broker ??
      ((env) =>
        createBroker(env, {
          login: new OneExactIdentityDriver({ allowLoopback: config().allowLoopback }),
          ...(io.dynamo ? { dynamo: io.dynamo } : {}),
        }))
    )(io.env);

  switch (command) {
    case "table create":
      return createTable(config().tableName, io);
    case "connection add": {
      const { allowLoopback } = config();
      const mode = values.mode ?? ConnectionMode.Code;
      if (mode !== ConnectionMode.Code && mode !== ConnectionMode.Implicit) {
        throw new ValidationError(`--mode must be "code" or "implicit", got "${mode}"`);
      }
      const id = connectionId(values);
      const clientId = required(values, "client-id");
      const baseUrl = checkBaseUrl(required(values, "base-url"), allowLoopback);
      const callback = redirectUri(required(values, "redirect-uri"), allowLoopback);
      const secretId = secretIdFor(id, values, io.env);
      const pinnedDivision = values.division === undefined ? undefined : parseDivision(values.division);
      const connection = {
        connectionId: id,
        clientId,
        baseUrl,
        redirectUri: callback,
        secretId,
        mode,
        ...(pinnedDivision !== undefined ? { pinnedDivision } : {}),
      };
      if (values["secret-file"] !== undefined || values["prompt-secret"]) {
        const secret = await readSecretInput(
          {
            ...(values["secret-file"] ? { file: values["secret-file"] } : {}),
            ...(io.prompt ? { prompt: io.prompt } : {}),
          },
          secretId,
        );
        const writer = io.secretWriter ?? defaultSecretWriter(io.env);
        const writes = await writer.put({ connectionId: id, secretId }, secret);
        for (const line of describeWrites(writes)) io.out(line);
      }
      const record = await store().addConnection(connection, Date.now());
      io.out(
        `added connection "${record.connectionId}" (${record.baseUrl}, client ${record.clientId}, ` +
          `${pinnedDivision !== undefined ? `division ${pinnedDivision}` : "division pinned at first consent"})`,
      );
      io.out(
        record.mode === ConnectionMode.Implicit
          ? `next: its first vend logs in as the secret's user, or now: exact-broker heal --id ${record.connectionId}`
          : `next: print a consent link with: exact-broker connect --id ${record.connectionId} (or seed it with an authorization code)`,
      );
      return ExitCode.Done;
    }
    case "connection list": {
      const records = await store().list();
      if (records.length === 0) {
        io.out("no connections; add one with: exact-broker connection add …");
        return ExitCode.Done;
      }
      const rows = records.map((r) => [
        r.connectionId,
        r.status,
        String(r.generation),
        r.exactUserName ?? "-",
        r.baseUrl,
      ]);
      const header = ["ID", "STATUS", "GEN", "EXACT USER", "BASE URL"];
      const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]?.length ?? 0)));
      for (const row of [header, ...rows])
        io.out(
          row
            .map((cell, i) => cell.padEnd(widths[i] ?? 0))
            .join("  ")
            .trimEnd(),
        );
      return ExitCode.Done;
    }
    case "connection remove": {
      const id = connectionId(values);
      const s = store();
      const record = await s.get(id);
      if (!record) throw new ConnectionNotFound(`connection "${id}" does not exist`);
      await s.removeConnection(record);
      io.out(
        `removed connection "${id}"${record.exactUserName ? `; Exact user ${record.exactUserName} can be connected again` : ""}`,
      );
      return ExitCode.Done;
    }
    case "connection set-secret": {
      const id = connectionId(values);
      const input = {
        ...(values["secret-file"] ? { file: values["secret-file"] } : {}),
        ...(io.prompt ? { prompt: io.prompt } : {}),
      };
      const given =
        values["secret-file"] !== undefined || values["prompt-secret"]
          ? (secretId: string) => readSecretInput(input, secretId)
          : undefined;
      return setSecret(
        {
          store: store(),
          source: io.secretSource ?? createSecretSource(io.env),
          writer: io.secretWriter ?? defaultSecretWriter(io.env),
        },
        id,
        given,
        io,
      );
    }
    case "connection set-division": {
      const id = connectionId(values);
      const division = parseDivision(required(values, "division"));
      return setDivision(broker(), id, division, io);
    }
    case "connection seed": {
      const id = connectionId(values);
      const result = await broker().onboarding.seed(id, required(values, "code"));
      if (result.redirectedFrom) {
        io.err(
          `refused: Exact user ${result.exactUserName} is already connected as "${result.connectionId}". ` +
            `Exact started a new chain for this code and ended the old one, so the new tokens were stored on ` +
            `"${result.connectionId}" (generation ${result.generation}); "${id}" stays unconnected. ` +
            `Use "${result.connectionId}", or remove it first if "${id}" should own this user.`,
        );
        return ExitCode.Refused;
      }
      io.out(
        `connected "${result.connectionId}" to Exact user ${result.exactUserName} (division ${result.division ?? "-"}), generation ${result.generation}`,
      );
      return ExitCode.Done;
    }
    case "connection import": {
      const id = connectionId(values);
      const token = await readRefreshToken(required(values, "refresh-token-file"), io.stdin ?? process.stdin);
      return importConnection(broker(), id, token, values.replace ?? false, io);
    }
    case "connect": {
      const id = connectionId(values);
      const connectUrl = values["connect-url"] ?? io.env.CONNECT_URL;
      const flow = createConnectFlow(broker(), {
        keys: createLinkKeySource(io.env),
        ...(io.dynamo ? { dynamo: io.dynamo } : {}),
      });
      const link = await flow.createConnectLink({ connectionId: id, ...(connectUrl ? { connectUrl } : {}) });
      io.out(`one-time link for connection "${id}", valid until ${link.expiresAt} (15 minutes), works once:`);
      io.out(link.url);
      // A link preview (chat, mail) spends nothing; the button binds the attempt to the browser that pressed it.
      io.out(
        "open it in a browser, press its button, and log in at Exact (in that same browser) as the user this connection should act for",
      );
      return ExitCode.Done;
    }
    case "heal": {
      const id = connectionId(values);
      const result = await broker().heal.heal(id, { operator: true });
      switch (result.kind) {
        case "healed":
          io.out(`healed connection "${id}": a login started generation ${result.generation}`);
          return ExitCode.Done;
        case "verified":
          io.out(
            `connection "${id}": its stored chain passed the identity check (generation ${result.generation}); no login was needed`,
          );
          return ExitCode.Done;
        case "skipped":
          if (result.why === "needs_operator") {
            io.err(`connection "${id}" needs an operator; see: exact-broker status --id ${id}`);
            return ExitCode.Refused;
          }
          io.err(
            `connection "${id}" is being worked on by another invocation (${result.why}); check: exact-broker status --id ${id}`,
          );
          return ExitCode.TryLater;
        case "failed":
          io.err(`${result.errorType}: ${result.message}`);
          return result.errorType === "ReauthRequired" || result.errorType === "DuplicateChain"
            ? ExitCode.Refused
            : ExitCode.TryLater;
      }
      break;
    }
    case "vend": {
      const b = broker();
      const raw = values["min-validity"];
      const minValidity = raw === undefined ? b.config.refreshWindowSeconds : Number(raw);
      if (!Number.isInteger(minValidity) || minValidity < 0 || minValidity > b.config.refreshWindowSeconds) {
        throw new ValidationError(
          `--min-validity must be an integer from 0 to ${b.config.refreshWindowSeconds}`,
        );
      }
      io.out(JSON.stringify(await b.vend.vend(connectionId(values), minValidity), null, 2));
      return ExitCode.Done;
    }
    case "status": {
      const id = connectionId(values);
      const record = await store().get(id);
      if (!record) throw new ConnectionNotFound(`connection "${id}" does not exist`);
      const report = statusReport(record, Date.now());
      io.out(values.json ? JSON.stringify(report, null, 2) : formatStatus(report));
      return ExitCode.Done;
    }
    case "history": {
      const id = connectionId(values);
      const limit = parseHistoryLimit(values.limit);
      return showHistory(store(), id, { json: values.json ?? false, limit }, io);
    }
    default:
      if (isGrantCommand(command)) {
        const id = connectionId(values);
        return runGrantCommand(
          command,
          { connectionId: id, principal: values.principal, json: values.json ?? false },
          {
            ...io,
            tableName: config().tableName,
            dynamo: io.dynamo ?? new DynamoDBClient({}),
            connectionExists: async (connection) => (await store().get(connection)) !== undefined,
          },
        );
      }
      throw new ValidationError(`unknown command "${shownCommand(command)}"\n\n${USAGE}`);
  }
}

async function createTable(tableName: string, io: CliIo): Promise<number> {
  const client = io.dynamo ?? new DynamoDBClient({});
  try {
    await client.send(new CreateTableCommand(createTableInput(tableName)));
    io.out(`creating table ${tableName} …`);
  } catch (error) {
    if (!(error instanceof ResourceInUseException)) throw error;
    io.out(`table ${tableName} already exists`);
  }
  for (let attempt = 0; attempt < 120; attempt += 1) {
    const { Table } = await client.send(new DescribeTableCommand({ TableName: tableName }));
    if (Table?.TableStatus === "ACTIVE") {
      await enableTtl(client, tableName, io);
      io.out(`table ${tableName} is ready`);
      return ExitCode.Done;
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  io.err(`table ${tableName} did not become ACTIVE within 60 s; check it with aws dynamodb describe-table`);
  return ExitCode.TryLater;
}

/** Onboarding nonces expire by TTL. Local DynamoDB stand-ins may lack the API: say so, go on. */
async function enableTtl(client: DynamoDBClient, tableName: string, io: CliIo): Promise<void> {
  try {
    await client.send(
      new UpdateTimeToLiveCommand({
        TableName: tableName,
        TimeToLiveSpecification: { AttributeName: ChainTable.ttlAttribute, Enabled: true },
      }),
    );
  } catch (error) {
    const name = (error as Error).name;
    if (name === "ValidationException" && /already enabled/i.test((error as Error).message)) return;
    io.out(
      `note: TTL on ${ChainTable.ttlAttribute} not enabled (${name}); expired onboarding nonces will stay until removed`,
    );
  }
}

/**
 * In AWS the functions read client secrets only under CLIENT_SECRET_PREFIX (and, in a stack
 * still moving old connections, the combined prefix): a connection's secret defaults to
 * `<prefix><id>` there, and another name is refused. Locally, any name.
 */
function secretIdFor(id: string, values: Values, env: NodeJS.ProcessEnv): string {
  const given = values["secret-id"];
  if (env.LOCAL_SECRETS_FILE) {
    if (!given) throw new ValidationError("--secret-id is required with LOCAL_SECRETS_FILE");
    return given;
  }
  const secretId = given ?? clientSecretName(id);
  if (!secretId.startsWith(CLIENT_SECRET_PREFIX)) {
    throw new ValidationError(
      `--secret-id must start with ${CLIENT_SECRET_PREFIX}: the deployed functions read client secrets nowhere else (leave it out to use ${clientSecretName(id)})`,
    );
  }
  return secretId;
}

function defaultSecretWriter(env: NodeJS.ProcessEnv): SecretWriter {
  return env.LOCAL_SECRETS_FILE
    ? createFileSecretWriter(env.LOCAL_SECRETS_FILE)
    : createSecretsManagerWriter();
}
