import { CreateAccessKeyCommand, CreateRoleCommand, CreateUserCommand, IAMClient } from "@aws-sdk/client-iam";
import { AssumeRoleCommand, STSClient } from "@aws-sdk/client-sts";
import type { AwsCredentials } from "../../lib/client/identity-signer.js";
import { type MotoServer, startMotoServer } from "../support/moto-server.js";

/** A principal created in moto, with credentials of its own. */
export interface MotoPrincipal {
  /** What a grant names: the role's ARN (with its path) or the user's. */
  readonly arn: string;
  readonly credentials: AwsCredentials;
}

/** A moto_server that checks every request's SigV4 signature, and the consumers created in it. */
export interface MotoIdentities {
  readonly moto: MotoServer;
  /** An IAM user `alice` under path `/team/`, with an access key. */
  readonly user: MotoPrincipal;
  /** A session of role `consumer-a` (path `/apps/`): STS answers it as `assumed-role/consumer-a/…`, without the path. */
  readonly roleA: MotoPrincipal;
  /** A session of role `consumer-b`, no path. */
  readonly roleB: MotoPrincipal;
}

/** The actions made before moto starts checking signatures (moto's INITIAL_NO_AUTH_ACTION_COUNT). */
const SETUP_ACTIONS = 6;
const TRUST_ANYONE = JSON.stringify({
  Version: "2012-10-17",
  Statement: [{ Effect: "Allow", Principal: { AWS: "*" }, Action: "sts:AssumeRole" }],
});

/**
 * Starts a moto_server of its own with request signing enforced after exactly six actions: the
 * six that create the consumers here (moto counts every action, its own IAM and STS calls
 * included, and checks signatures and IAM policies for every action after them; GetCallerIdentity
 * is always allowed once the signature is right). Every later request must be signed with
 * credentials moto issued.
 */
export async function startMotoIdentities(): Promise<MotoIdentities> {
  const moto = await startMotoServer({ env: { INITIAL_NO_AUTH_ACTION_COUNT: String(SETUP_ACTIONS) } });
  try {
    // Any credentials do for the unchecked setup actions; moto's default account is 123456789012.
    const setup = { accessKeyId: "AKIAMOTOSETUP0000000", secretAccessKey: "setup" };
    const iam = new IAMClient({ endpoint: moto.endpoint, region: "us-east-1", credentials: setup });
    const sts = new STSClient({ endpoint: moto.endpoint, region: "eu-west-1", credentials: setup });

    const user = await iam.send(new CreateUserCommand({ UserName: "alice", Path: "/team/" }));
    const key = await iam.send(new CreateAccessKeyCommand({ UserName: "alice" }));
    const session = async (roleName: string, path: string): Promise<MotoPrincipal> => {
      const role = await iam.send(
        new CreateRoleCommand({ RoleName: roleName, Path: path, AssumeRolePolicyDocument: TRUST_ANYONE }),
      );
      const assumed = await sts.send(
        new AssumeRoleCommand({ RoleArn: role.Role?.Arn, RoleSessionName: `${roleName}-session` }),
      );
      const c = assumed.Credentials;
      if (!role.Role?.Arn || !c?.AccessKeyId || !c.SecretAccessKey || !c.SessionToken)
        throw new Error(`moto did not assume ${roleName}`);
      return {
        arn: role.Role.Arn,
        credentials: {
          accessKeyId: c.AccessKeyId,
          secretAccessKey: c.SecretAccessKey,
          sessionToken: c.SessionToken,
        },
      };
    };
    const roleA = await session("consumer-a", "/apps/");
    const roleB = await session("consumer-b", "/");
    iam.destroy();
    sts.destroy();
    if (!user.User?.Arn || !key.AccessKey?.AccessKeyId || !key.AccessKey.SecretAccessKey)
      throw new Error("moto did not create the user's access key");
    return {
      moto,
      user: {
        arn: user.User.Arn,
        credentials: {
          accessKeyId: key.AccessKey.AccessKeyId,
          secretAccessKey: key.AccessKey.SecretAccessKey,
        },
      },
      roleA,
      roleB,
    };
  } catch (error) {
    await moto.close();
    throw error;
  }
}
