import { Stack } from "aws-cdk-lib";
import { Grant, type IGrantable } from "aws-cdk-lib/aws-iam";
import { Key } from "aws-cdk-lib/aws-kms";
import { Construct } from "constructs";

/**
 * The stack's customer-managed key: it encrypts the chain table at rest and wraps the branch keys
 * from which the Encryption SDK's hierarchical keyring (lib/crypto/token-cipher.ts) derives every
 * token's data key; tokens sealed before the branch key existed name the key itself (the KMS
 * keyring) and still open with it. Yearly rotation on.
 */
export class TokenKey extends Construct {
  readonly key: Key;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    this.key = new Key(this, "Key", {
      enableKeyRotation: true,
      description:
        "exact-token-broker: encrypts the chain table and, through the Encryption SDK, every token",
    });
  }

  /**
   * What the keyrings use, nothing else: `kms:Decrypt`, which unwraps a branch key when the
   * hierarchical keyring loads it and opens the tokens sealed before the branch key store (KMS
   * keyring); it is also what DynamoDB needs from a caller of a table encrypted with this key. No
   * `kms:GenerateDataKey`: the hierarchical keyring makes each token's data key itself and wraps it
   * with a key derived from the branch key, so sealing calls KMS for nothing.
   */
  grantKeyring(grantee: IGrantable): Grant {
    return Grant.addToPrincipal({
      grantee,
      actions: ["kms:Decrypt"],
      resourceArns: [this.key.keyArn],
    });
  }

  /**
   * What a caller of the table needs and no more, for a function that never opens a token (the
   * refresh dispatcher): `kms:Decrypt`, only through DynamoDB.
   */
  grantTableUse(grantee: IGrantable): Grant {
    const stack = Stack.of(this);
    return Grant.addToPrincipal({
      grantee,
      actions: ["kms:Decrypt"],
      resourceArns: [this.key.keyArn],
      conditions: { StringEquals: { "kms:ViaService": `dynamodb.${stack.region}.${stack.urlSuffix}` } },
    });
  }
}
