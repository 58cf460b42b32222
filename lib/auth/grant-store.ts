import {
  type AttributeValue,
  ConditionalCheckFailedException,
  DynamoDBClient,
  GetItemCommand,
  UpdateItemCommand,
} from "@aws-sdk/client-dynamodb";
import { marshall } from "@aws-sdk/util-dynamodb";
import { ChainTable, grantsKey } from "../chain/table-definition.js";

/** The connection ID of the all-connections grants (`grantVend(fn, { allConnections: true })`). */
export const ALL_CONNECTIONS = "*";

/** The string-set attribute of a `GRANTS#…` item holding the CLI's grants: principal keys (principal.ts). */
export const PRINCIPALS_ATTRIBUTE = "principals";

/**
 * The string-set attribute of a `GRANTS#…` item holding the grants `grantVend` writes at deploy,
 * each `<principal key> cdk:<stack name>/<grantee's construct path in its stack>`
 * ({@link deployedGrantElement}).
 */
export const DEPLOYED_PRINCIPALS_ATTRIBUTE = "deployedPrincipals";

/** A grant `grantVend` wrote at deploy, and the custom resource that holds it. */
export interface DeployedGrant {
  readonly principal: string;
  /** The CloudFormation stack whose custom resource wrote the grant (and removes it). */
  readonly stackName: string;
  /** The grantee's construct path in that stack (`Reporting` for a function `Reporting`). */
  readonly constructPath: string;
}

/** Who may get a connection's tokens from token-vend. */
export interface ConnectionGrants {
  /** Principal keys granted this connection by the CLI, sorted. */
  readonly principals: readonly string[];
  /** This connection's grants written at deploy, sorted. */
  readonly deployed: readonly DeployedGrant[];
  /** Principal keys in the all-connections item's `principals` (written by grantVend before the holder was stored), sorted. */
  readonly allConnections: readonly string[];
  /** Grants of every connection written at deploy (`allConnections: true`), sorted. */
  readonly allConnectionsDeployed: readonly DeployedGrant[];
}

/** What a revoke took back. */
export interface RevokedGrants {
  /** Whether the principal had the CLI's grant of the connection. */
  readonly granted: boolean;
  /** The principal's grants of the connection written at deploy, now removed. */
  readonly deployed: readonly DeployedGrant[];
}

/** One `GRANTS#…` item, read. */
interface GrantItem {
  readonly principals: ReadonlySet<string>;
  readonly deployed: readonly DeployedGrant[];
}

/**
 * The deploy-written set element of a grant. The holder makes each element one custom
 * resource's own: two resources that grant one principal the same connection (two functions
 * sharing a role, two stacks) write two elements, so removing one leaves the other. A principal
 * key holds no space; the stack name and path may be CloudFormation tokens (resolved at deploy).
 */
export function deployedGrantElement(principal: string, stackName: string, constructPath: string): string {
  return `${principal} cdk:${stackName}/${constructPath}`;
}

/** Stack names hold no `/`, so the first one ends the stack name. */
const DEPLOYED_ELEMENT = /^(\S+) cdk:([^/]+)\/(.+)$/;

function deployedGrantOf(element: string): DeployedGrant | undefined {
  const [, principal, stackName, constructPath] = DEPLOYED_ELEMENT.exec(element) ?? [];
  return principal && stackName && constructPath ? { principal, stackName, constructPath } : undefined;
}

const elementOf = (grant: DeployedGrant): string =>
  deployedGrantElement(grant.principal, grant.stackName, grant.constructPath);

function grantItemOf(item: Record<string, AttributeValue> | undefined): GrantItem {
  const deployed = (item?.[DEPLOYED_PRINCIPALS_ATTRIBUTE]?.SS ?? [])
    .sort()
    .map(deployedGrantOf)
    .filter((grant) => grant !== undefined);
  return { principals: new Set(item?.[PRINCIPALS_ATTRIBUTE]?.SS ?? []), deployed };
}

const names = (item: GrantItem, principal: string): boolean =>
  item.principals.has(principal) || item.deployed.some((grant) => grant.principal === principal);

/**
 * Grants in the broker's table: one item per connection (`GRANTS#<id>`, and `GRANTS#*` for every
 * connection) holding two string sets: `principals`, the CLI's grants (principal keys), and
 * `deployedPrincipals`, grantVend's (principal key and holder). ADD and DELETE on a set are
 * atomic, so the CLI and any number of CDK custom resources (each adding or removing its own
 * element) never overwrite each other, and writing the same grant twice is harmless. A principal
 * is granted while either set names it. Grants belong to the connection ID: they outlive a
 * `connection remove` and apply to a connection added again.
 */
export class GrantStore {
  readonly #client: DynamoDBClient;
  readonly #tableName: string;

  constructor(options: { readonly tableName: string; readonly client?: DynamoDBClient }) {
    this.#tableName = options.tableName;
    this.#client = options.client ?? new DynamoDBClient({});
  }

  /** Grants `principal` (a principal key) the connection; `ALL_CONNECTIONS` for every one. */
  async grant(connectionId: string, principal: string): Promise<void> {
    await this.#client.send(
      new UpdateItemCommand({
        TableName: this.#tableName,
        Key: marshall({ [ChainTable.partitionKey]: grantsKey(connectionId) }),
        UpdateExpression: "ADD #principals :principal",
        ExpressionAttributeNames: { "#principals": PRINCIPALS_ATTRIBUTE },
        ExpressionAttributeValues: { ":principal": { SS: [principal] } },
      }),
    );
  }

  /**
   * Takes back every grant of the connection to `principal`: the CLI's and the ones written at
   * deploy (the operator wants the principal served no more; a later deploy that updates such a
   * custom resource writes its grant again). Writes nothing when there is none, so a revoke
   * never creates an empty item. A grant a deploy adds between the read and the write stays.
   */
  async revoke(connectionId: string, principal: string): Promise<RevokedGrants> {
    const elements = (await this.#read(connectionId)).deployed
      .filter((grant) => grant.principal === principal)
      .map(elementOf);
    const values: Record<string, AttributeValue> = {
      ":principal": { SS: [principal] },
      ":one": { S: principal },
    };
    const found = ["contains(#principals, :one)"];
    elements.forEach((element, i) => {
      values[`:element${i}`] = { S: element };
      found.push(`contains(#deployed, :element${i})`);
    });
    if (elements.length > 0) values[":deployed"] = { SS: elements };
    try {
      const out = await this.#client.send(
        new UpdateItemCommand({
          TableName: this.#tableName,
          Key: marshall({ [ChainTable.partitionKey]: grantsKey(connectionId) }),
          UpdateExpression:
            elements.length > 0
              ? "DELETE #principals :principal, #deployed :deployed"
              : "DELETE #principals :principal",
          ConditionExpression: found.join(" OR "),
          ExpressionAttributeNames: {
            "#principals": PRINCIPALS_ATTRIBUTE,
            ...(elements.length > 0 ? { "#deployed": DEPLOYED_PRINCIPALS_ATTRIBUTE } : {}),
          },
          ExpressionAttributeValues: values,
          ReturnValues: "UPDATED_OLD",
        }),
      );
      const before = grantItemOf(out.Attributes);
      return {
        granted: before.principals.has(principal),
        deployed: before.deployed.filter((grant) => elements.includes(elementOf(grant))),
      };
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return { granted: false, deployed: [] };
      throw error;
    }
  }

  /** The connection's grants and the all-connections ones, read strongly consistent. */
  async list(connectionId: string): Promise<ConnectionGrants> {
    const [own, all] = await Promise.all([this.#read(connectionId), this.#read(ALL_CONNECTIONS)]);
    return {
      principals: [...own.principals].sort(),
      deployed: own.deployed,
      allConnections: [...all.principals].sort(),
      allConnectionsDeployed: all.deployed,
    };
  }

  /**
   * Whether token-vend may serve the connection to `principal`: granted that connection or every
   * connection, by the CLI or at deploy. Two GetItems in parallel (one round trip); strongly
   * consistent, so a revoke applies to the next uncached check.
   */
  async isGranted(connectionId: string, principal: string): Promise<boolean> {
    const [own, all] = await Promise.all([this.#read(connectionId), this.#read(ALL_CONNECTIONS)]);
    return names(own, principal) || names(all, principal);
  }

  async #read(connectionId: string): Promise<GrantItem> {
    const out = await this.#client.send(
      new GetItemCommand({
        TableName: this.#tableName,
        Key: marshall({ [ChainTable.partitionKey]: grantsKey(connectionId) }),
        ProjectionExpression: "#principals, #deployed",
        ExpressionAttributeNames: {
          "#principals": PRINCIPALS_ATTRIBUTE,
          "#deployed": DEPLOYED_PRINCIPALS_ATTRIBUTE,
        },
        ConsistentRead: true,
      }),
    );
    return grantItemOf(out.Item);
  }
}
