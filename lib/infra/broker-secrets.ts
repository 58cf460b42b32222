import { ArnFormat, Stack, Validations } from "aws-cdk-lib";
import { Grant, type IGrantable } from "aws-cdk-lib/aws-iam";
import { Secret } from "aws-cdk-lib/aws-secretsmanager";
import { Construct, type IConstruct } from "constructs";
import { acknowledgeWildcardResource, awsSolutionsRule } from "./nag.js";
import { CONNECTION_SECRET_PREFIX } from "./names.js";

export interface BrokerSecretsProps {
  /**
   * Name prefix of the connections' secrets; the functions can read secrets under it only.
   * @default {@link CONNECTION_SECRET_PREFIX}
   */
  readonly connectionSecretPrefix?: string;
}

/** The link key is a random string this long: 64 × ~5.95 bits of letters and digits ≈ 380 bits. */
const LINK_KEY_LENGTH = 64;

/**
 * Secrets Manager: the connections' secrets (created by operators with `exact-broker connection
 * add`, under a fixed name prefix) and the link-signing key (generated here).
 */
export class BrokerSecrets extends Construct {
  /** HMAC key for connect links and OAuth states (lib/onboarding/link-key-source.ts): a plain string. */
  readonly linkSigningKey: Secret;
  readonly connectionSecretPrefix: string;
  /** `arn:…:secret:<prefix>*`: Secrets Manager appends 6 random characters to every secret's ARN. */
  readonly connectionSecretsArn: string;

  constructor(scope: Construct, id: string, props: BrokerSecretsProps = {}) {
    super(scope, id);
    this.connectionSecretPrefix = props.connectionSecretPrefix ?? CONNECTION_SECRET_PREFIX;
    this.connectionSecretsArn = Stack.of(this).formatArn({
      service: "secretsmanager",
      resource: "secret",
      resourceName: `${this.connectionSecretPrefix}*`,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
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
   * `secretsmanager:GetSecretValue` on the connections' secrets (by name prefix), acknowledged
   * for cdk-nag on the grantee's construct: the one wildcard the broker cannot avoid.
   */
  grantReadConnectionSecrets(grantee: IGrantable & IConstruct): Grant {
    const grant = Grant.addToPrincipal({
      grantee,
      actions: ["secretsmanager:GetSecretValue"],
      resourceArns: [this.connectionSecretsArn],
    });
    acknowledgeWildcardResource(
      grantee,
      this.connectionSecretsArn,
      `Connection secrets are created by operators after deployment (exact-broker connection add), so ` +
        `their ARNs are unknown here; the wildcard is bounded to the fixed name prefix ` +
        `"${this.connectionSecretPrefix}" and to GetSecretValue.`,
    );
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
