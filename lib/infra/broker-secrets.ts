import { ArnFormat, Stack, Validations } from "aws-cdk-lib";
import { Grant, type IGrantable } from "aws-cdk-lib/aws-iam";
import { Secret } from "aws-cdk-lib/aws-secretsmanager";
import { Construct, type IConstruct } from "constructs";
import { acknowledgeWildcardResource, awsSolutionsRule } from "./nag.js";
import { CLIENT_SECRET_PREFIX, COMBINED_SECRET_PREFIX, LOGIN_SECRET_PREFIX } from "./names.js";

export interface BrokerSecretsProps {
  /**
   * Also let every function that makes token calls read secrets in the combined layout
   * (`exact-token-broker/connections/*`, client secret and login credentials in one secret), for a
   * deployment made before the split, until `exact-broker connection set-secret` has moved every
   * connection (README, "Trust boundary"). IAM grants whole secrets: while this is on, token-vend,
   * refresh and connect can read the passwords in combined secrets too.
   * @default false
   */
  readonly combinedSecrets?: boolean;
}

/** The link key is a random string this long: 64 × ~5.95 bits of letters and digits ≈ 380 bits. */
const LINK_KEY_LENGTH = 64;

/**
 * Secrets Manager: the connections' secrets (created by operators with `exact-broker connection
 * add`, under fixed name prefixes: lib/infra/names.ts, lib/secrets/secret-layout.ts) and the
 * link-signing key (generated here).
 */
export class BrokerSecrets extends Construct {
  /** HMAC key for connect links and OAuth states (lib/onboarding/link-key-source.ts): a plain string. */
  readonly linkSigningKey: Secret;
  /** `arn:…:secret:exact-token-broker/client-secrets/*`: Secrets Manager appends 6 random characters to every secret's ARN. */
  readonly clientSecretsArn: string;
  /** `arn:…:secret:exact-token-broker/logins/*` */
  readonly loginSecretsArn: string;
  /** `arn:…:secret:exact-token-broker/connections/*`, when the stack reads combined secrets (`combinedSecrets`). */
  readonly combinedSecretsArn: string | undefined;

  constructor(scope: Construct, id: string, props: BrokerSecretsProps = {}) {
    super(scope, id);
    const underPrefix = (prefix: string) =>
      Stack.of(this).formatArn({
        service: "secretsmanager",
        resource: "secret",
        resourceName: `${prefix}*`,
        arnFormat: ArnFormat.COLON_RESOURCE_NAME,
      });
    this.clientSecretsArn = underPrefix(CLIENT_SECRET_PREFIX);
    this.loginSecretsArn = underPrefix(LOGIN_SECRET_PREFIX);
    this.combinedSecretsArn = props.combinedSecrets ? underPrefix(COMBINED_SECRET_PREFIX) : undefined;
    this.linkSigningKey = new Secret(this, "LinkSigningKey", {
      description: "exact-token-broker: HMAC key that signs connect links and OAuth states",
      generateSecretString: {
        passwordLength: LINK_KEY_LENGTH,
        excludePunctuation: true,
        includeSpace: false,
      },
    });
    Validations.of(this.linkSigningKey).acknowledge({
      id: awsSolutionsRule("SMG4"),
      reason:
        "The link key only signs one-time connect links and OAuth states that live 15 minutes, so there " +
        "is nothing to re-encrypt and no rotation Lambda is worth its cost. Rotating is putting a new " +
        "random value (aws secretsmanager put-secret-value): links signed with the old key stop working, " +
        "and containers that cached the old key (up to 15 minutes) refuse links signed with the new one.",
    });
  }

  /**
   * `secretsmanager:GetSecretValue` on the connections' client secrets (by name prefix), and on
   * combined secrets when the stack reads them: what every token call needs (token-vend, refresh,
   * connect, fallback-login's code exchange).
   */
  grantReadClientSecrets(grantee: IGrantable & IConstruct): Grant {
    const arns = [this.clientSecretsArn, ...(this.combinedSecretsArn ? [this.combinedSecretsArn] : [])];
    const grant = Grant.addToPrincipal({
      grantee,
      actions: ["secretsmanager:GetSecretValue"],
      resourceArns: arns,
    });
    acknowledgePrefix(grantee, this.clientSecretsArn, CLIENT_SECRET_PREFIX);
    if (this.combinedSecretsArn) {
      acknowledgePrefix(
        grantee,
        this.combinedSecretsArn,
        COMBINED_SECRET_PREFIX,
        " Granted only while the stack sets combinedSecrets, to move connections out of combined secrets.",
      );
    }
    return grant;
  }

  /**
   * `secretsmanager:GetSecretValue` on the connections' login secrets (user name, password, TOTP
   * secret), by name prefix: for fallback-login alone, the one function that logs in.
   */
  grantReadLoginCredentials(grantee: IGrantable & IConstruct): Grant {
    const grant = Grant.addToPrincipal({
      grantee,
      actions: ["secretsmanager:GetSecretValue"],
      resourceArns: [this.loginSecretsArn],
    });
    acknowledgePrefix(grantee, this.loginSecretsArn, LOGIN_SECRET_PREFIX);
    return grant;
  }

  /** `secretsmanager:GetSecretValue` on the link-signing key only. */
  grantReadLinkKey(grantee: IGrantable): Grant {
    return Grant.addToPrincipal({
      grantee,
      actions: ["secretsmanager:GetSecretValue"],
      resourceArns: [this.linkSigningKey.secretArn],
    });
  }
}

/** Acknowledges, for cdk-nag, one secret-name-prefix wildcard on the grantee's construct. */
function acknowledgePrefix(grantee: IConstruct, arn: string, prefix: string, extra = ""): void {
  acknowledgeWildcardResource(
    grantee,
    arn,
    `Connection secrets are created by operators after deployment (exact-broker connection add), so ` +
      `their ARNs are unknown here; the wildcard is bounded to the fixed name prefix "${prefix}" and to ` +
      `GetSecretValue.${extra}`,
  );
}
