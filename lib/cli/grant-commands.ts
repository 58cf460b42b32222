import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import {
  ALL_CONNECTIONS,
  type ConnectionGrants,
  type DeployedGrant,
  GrantStore,
} from "../auth/grant-store.js";
import { grantPrincipalOf } from "../auth/principal.js";
import { ValidationError } from "../errors.js";
import { ExitCode } from "./exit-codes.js";

/** The CLI's grant commands (`exact-broker grant|revoke|grants`). */
export const GrantCommand = { Grant: "grant", Revoke: "revoke", Grants: "grants" } as const;
export type GrantCommand = (typeof GrantCommand)[keyof typeof GrantCommand];

const COMMANDS: readonly string[] = Object.values(GrantCommand);

export function isGrantCommand(command: string): command is GrantCommand {
  return COMMANDS.includes(command);
}

export const GRANT_USAGE = `  exact-broker grant --id ID --principal ARN
  exact-broker revoke --id ID --principal ARN
  exact-broker grants --id ID [--json]`;

export interface GrantCommandInput {
  /** A checked connection ID (main.ts). */
  readonly connectionId: string;
  /** `--principal`: an IAM role ARN (any path) or IAM user ARN; required by grant and revoke. */
  readonly principal: string | undefined;
  readonly json: boolean;
}

export interface GrantCommandIo {
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
  readonly tableName: string;
  readonly dynamo: DynamoDBClient;
  /** Whether the connection exists (a grant may come first: it applies once the connection is added). */
  readonly connectionExists: (connectionId: string) => Promise<boolean>;
}

function principalOf(input: GrantCommandInput): { given: string; key: string } {
  if (input.principal === undefined || input.principal === "")
    throw new ValidationError("--principal is required");
  return { given: input.principal, key: grantPrincipalOf(input.principal) };
}

/**
 * Runs `grant`, `revoke` or `grants` against the broker's table (lib/auth/grant-store.ts).
 * Under VEND_AUTHORIZATION=perConnection, token-vend serves a connection only to the principals
 * granted it (a warm token-vend container notices a revoke within a minute). `grant` writes the
 * CLI's grant; `revoke` takes back the CLI's and grantVend's grants of the connection to the
 * principal, as the operator means the principal to be served no more; `grants` lists both, a
 * deployed one with the stack and grantee that wrote it.
 *
 * @returns the exit code: 0 done, 2 a bad principal, 3 revoking a grant that does not exist
 */
export async function runGrantCommand(
  command: GrantCommand,
  input: GrantCommandInput,
  io: GrantCommandIo,
): Promise<number> {
  const grants = new GrantStore({ tableName: io.tableName, client: io.dynamo });
  const id = input.connectionId;
  switch (command) {
    case GrantCommand.Grant: {
      const { given, key } = principalOf(input);
      await grants.grant(id, key);
      io.out(`granted connection "${id}" to ${key}`);
      if (key !== given) {
        io.out(
          "  (the role's path is not part of the grant: STS names a role's sessions by account and role name only)",
        );
      }
      if (!(await io.connectionExists(id))) {
        io.out(`  note: there is no connection "${id}" yet; the grant applies once it is added`);
      }
      return ExitCode.Done;
    }
    case GrantCommand.Revoke: {
      const { key } = principalOf(input);
      const revoked = await grants.revoke(id, key);
      if (!revoked.granted && revoked.deployed.length === 0) {
        io.err(`connection "${id}" has no grant for ${key}; see: exact-broker grants --id ${id}`);
        return ExitCode.NotFound;
      }
      io.out(
        `revoked ${key}'s grant of connection "${id}" (warm token-vend containers notice within a minute)`,
      );
      for (const grant of revoked.deployed) {
        io.out(
          `  including the one ${deployedBy(grant)}: a later deploy of that stack that changes its ` +
            "custom resource writes it back; take the connection out of that grantVend to keep it revoked",
        );
      }
      const { allConnections, allConnectionsDeployed } = await grants.list(id);
      if (allConnections.includes(key) || allConnectionsDeployed.some((grant) => grant.principal === key)) {
        io.out(
          `  note: ${key} still gets every connection, "${id}" included, through its all-connections grant`,
        );
      }
      return ExitCode.Done;
    }
    case GrantCommand.Grants: {
      const found = await grants.list(id);
      io.out(input.json ? JSON.stringify({ connectionId: id, ...found }, null, 2) : formatGrants(id, found));
      return ExitCode.Done;
    }
  }
}

const deployedBy = (grant: DeployedGrant): string =>
  `deployed by stack ${grant.stackName} (grantVend of ${grant.constructPath})`;

function formatGrants(connectionId: string, grants: ConnectionGrants): string {
  const rows = [
    ...grants.principals.map((principal) => [principal, `connection "${connectionId}"`]),
    ...grants.deployed.map((grant) => [
      grant.principal,
      `connection "${connectionId}", ${deployedBy(grant)}`,
    ]),
    ...grants.allConnections.map((principal) => [
      principal,
      `all connections (${ALL_CONNECTIONS}, from CDK)`,
    ]),
    ...grants.allConnectionsDeployed.map((grant) => [
      grant.principal,
      `all connections (${ALL_CONNECTIONS}), ${deployedBy(grant)}`,
    ]),
  ];
  if (rows.length === 0) {
    return (
      `no grants for connection "${connectionId}": under perConnection token-vend serves it to nobody; ` +
      `grant it with: exact-broker grant --id ${connectionId} --principal ARN`
    );
  }
  const header = ["PRINCIPAL", "GRANTED"];
  const width = Math.max(header[0]?.length ?? 0, ...rows.map(([principal]) => principal?.length ?? 0));
  return [header, ...rows]
    .map(([principal, scope]) => `${(principal ?? "").padEnd(width)}  ${scope}`)
    .join("\n");
}
