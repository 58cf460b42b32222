import { Stack } from "aws-cdk-lib";
import { Grant, type IGrantable } from "aws-cdk-lib/aws-iam";
import { Key } from "aws-cdk-lib/aws-kms";
import { Construct } from "constructs";

/**
 * The stack's customer-managed key: it encrypts the chain table at rest and, through the
 * Encryption SDK's KMS keyring (lib/crypto/token-cipher.ts), every token in it. Yearly rotation on.
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
   * What the keyring uses, nothing else: `kms:GenerateDataKey` (encrypt: the key is the
   * keyring's generator and there are no other keys, so no `kms:Encrypt`) and `kms:Decrypt`
   * (decrypt). `kms:Decrypt` is also what DynamoDB needs from a caller of a table encrypted with
   * this key.
   */
  grantKeyring(grantee: IGrantable): Grant {
    return Grant.addToPrincipal({
      grantee,
      actions: ["kms:GenerateDataKey", "kms:Decrypt"],
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
