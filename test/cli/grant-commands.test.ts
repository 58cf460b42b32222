import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { ALL_CONNECTIONS, GrantStore } from "../../lib/auth/grant-store.js";
import { ChainStore } from "../../lib/chain/chain-store.js";
import { ExitCode, exitCodeFor } from "../../lib/cli/exit-codes.js";
import { runCli } from "../../lib/cli/main.js";
import { AccessDenied } from "../../lib/errors.js";
import { LOCAL_AWS_ENV, type LocalDynamo, startDynalite } from "../../lib/local/dynalite.js";
import { writeDeployedGrant } from "../support/deployed-grant.js";

// `exact-broker grant | revoke | grants` against dynalite, through the CLI's own entry point.

const ROLE_WITH_PATH = "arn:aws:iam::123456789012:role/apps/reporting";
const ROLE_KEY = "arn:aws:iam::123456789012:role/reporting";
const USER = "arn:aws:iam::123456789012:user/team/alice";

describe("exact-broker grant, revoke, grants", () => {
  let dynamo: LocalDynamo;
  let tableName: string;
  beforeAll(async () => {
    dynamo = await startDynalite();
    tableName = await dynamo.createTable();
    await new ChainStore({ tableName, client: dynamo.client }).addConnection(
      {
        connectionId: "acme",
        clientId: "app-acme",
        baseUrl: "https://start.exactonline.nl",
        redirectUri: "https://broker.example.com/callback",
        secretId: "exact/acme",
        mode: "code",
      },
      Date.now(),
    );
  });
  afterAll(() => dynamo.close());

  async function cli(...argv: string[]) {
    const out: string[] = [];
    const err: string[] = [];
    const code = await runCli(argv, {
      out: (line) => out.push(line),
      err: (line) => err.push(line),
      env: { ...LOCAL_AWS_ENV, TABLE_NAME: tableName },
      dynamo: dynamo.client,
    });
    return { code, out: out.join("\n"), err: err.join("\n") };
  }

  it("grants a role by account and name, saying that the path is not part of the grant", async () => {
    const result = await cli("grant", "--id", "acme", "--principal", ROLE_WITH_PATH);

    expect(result.code).toBe(ExitCode.Done);
    expect(result.out).toContain(`granted connection "acme" to ${ROLE_KEY}`);
    expect(result.out).toContain("the role's path is not part of the grant");
    expect(await new GrantStore({ tableName, client: dynamo.client }).isGranted("acme", ROLE_KEY)).toBe(true);
  });

  it("grants a connection not added yet, and says it applies once it is", async () => {
    const result = await cli("grant", "--id", "later", "--principal", USER);

    expect(result.code).toBe(ExitCode.Done);
    expect(result.out).toContain('there is no connection "later" yet');
  });

  it("lists a connection's grants as a table and as JSON, with the all-connections grants", async () => {
    const grants = new GrantStore({ tableName, client: dynamo.client });
    await cli("grant", "--id", "acme", "--principal", USER);
    await grants.grant(ALL_CONNECTIONS, "arn:aws:iam::123456789012:role/ops");
    onTestFinished(() =>
      grants.revoke(ALL_CONNECTIONS, "arn:aws:iam::123456789012:role/ops").then(() => undefined),
    );

    const table = await cli("grants", "--id", "acme");
    const json = await cli("grants", "--id", "acme", "--json");

    expect(table.out.split("\n")).toEqual([
      "PRINCIPAL                                  GRANTED",
      'arn:aws:iam::123456789012:role/reporting   connection "acme"',
      'arn:aws:iam::123456789012:user/team/alice  connection "acme"',
      "arn:aws:iam::123456789012:role/ops         all connections (*, from CDK)",
    ]);
    expect(JSON.parse(json.out)).toEqual({
      connectionId: "acme",
      principals: [ROLE_KEY, USER],
      deployed: [],
      allConnections: ["arn:aws:iam::123456789012:role/ops"],
      allConnectionsDeployed: [],
    });
  });

  it("lists grants written at deploy with the stack and grantee that hold them", async () => {
    const reports = { principal: ROLE_KEY, stackName: "Consumer", constructPath: "Reports" };
    const auditor = { principal: USER, stackName: "Audit", constructPath: "Auditor" };
    await writeDeployedGrant(dynamo.client, tableName, "deployed", reports);
    await writeDeployedGrant(dynamo.client, tableName, ALL_CONNECTIONS, auditor);
    onTestFinished(() => writeDeployedGrant(dynamo.client, tableName, ALL_CONNECTIONS, auditor, "DELETE"));

    const table = await cli("grants", "--id", "deployed");
    const json = await cli("grants", "--id", "deployed", "--json");

    expect(table.out.split("\n")).toEqual([
      "PRINCIPAL                                  GRANTED",
      'arn:aws:iam::123456789012:role/reporting   connection "deployed", deployed by stack Consumer (grantVend of Reports)',
      "arn:aws:iam::123456789012:user/team/alice  all connections (*), deployed by stack Audit (grantVend of Auditor)",
    ]);
    expect(JSON.parse(json.out)).toEqual({
      connectionId: "deployed",
      principals: [],
      deployed: [reports],
      allConnections: [],
      allConnectionsDeployed: [auditor],
    });
  });

  it("revokes a grant, and exits 3 when there is none to revoke", async () => {
    const revoked = await cli("revoke", "--id", "acme", "--principal", USER);
    const again = await cli("revoke", "--id", "acme", "--principal", USER);

    expect(revoked.code).toBe(ExitCode.Done);
    expect(again.code).toBe(ExitCode.NotFound);
    expect(again.err).toContain(`connection "acme" has no grant for ${USER}`);
  });

  it("revokes the grants written at deploy too, saying a deploy that changes them writes them back", async () => {
    await cli("grant", "--id", "both", "--principal", ROLE_KEY);
    await writeDeployedGrant(dynamo.client, tableName, "both", {
      principal: ROLE_KEY,
      stackName: "Consumer",
      constructPath: "Reports",
    });

    const revoked = await cli("revoke", "--id", "both", "--principal", ROLE_KEY);

    expect(revoked.code).toBe(ExitCode.Done);
    expect(revoked.out.split("\n")).toEqual([
      `revoked ${ROLE_KEY}'s grant of connection "both" (warm token-vend containers notice within a minute)`,
      "  including the one deployed by stack Consumer (grantVend of Reports): a later deploy of that stack " +
        "that changes its custom resource writes it back; take the connection out of that grantVend to keep it revoked",
    ]);
    expect(await new GrantStore({ tableName, client: dynamo.client }).isGranted("both", ROLE_KEY)).toBe(
      false,
    );
  });

  it("says when the revoked principal still gets the connection through an all-connections grant", async () => {
    const ops = "arn:aws:iam::123456789012:role/ops";
    const grant = { principal: ops, stackName: "Ops", constructPath: "Ops" };
    await cli("grant", "--id", "acme", "--principal", ops);
    await writeDeployedGrant(dynamo.client, tableName, ALL_CONNECTIONS, grant);
    onTestFinished(() => writeDeployedGrant(dynamo.client, tableName, ALL_CONNECTIONS, grant, "DELETE"));

    const revoked = await cli("revoke", "--id", "acme", "--principal", ops);

    expect(revoked.code).toBe(ExitCode.Done);
    expect(revoked.out).toContain(
      `note: ${ops} still gets every connection, "acme" included, through its all-connections grant`,
    );
  });

  it.each([
    [["grant", "--id", "acme"], "--principal is required"],
    [
      ["grant", "--id", "acme", "--principal", "arn:aws:sts::123456789012:assumed-role/reporting/s1"],
      "grant the role instead",
    ],
    [["grant", "--id", "../x", "--principal", USER], "--id"],
  ])("exits 2 on bad input: %j", async (argv, message) => {
    const result = await cli(...argv);

    expect(result.code).toBe(ExitCode.BadInput);
    expect(result.err).toContain(message);
  });

  it("exits 4 on token-vend's AccessDenied, as on every refusal", () => {
    expect(
      exitCodeFor(new AccessDenied('arn:aws:iam::123456789012:user/x has no grant for connection "acme"')),
    ).toBe(ExitCode.Refused);
  });

  it("says who has no grant when a connection has none", async () => {
    const result = await cli("grants", "--id", "nobody");

    expect(result.out).toContain(
      'no grants for connection "nobody": under perConnection token-vend serves it to nobody',
    );
  });
});
