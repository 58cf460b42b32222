import { Stack, type StackProps } from "aws-cdk-lib";
import { Key } from "aws-cdk-lib/aws-kms";
import type { Construct } from "constructs";
import { ChainTableConstruct } from "./chain-table.js";

export interface BrokerStackProps extends StackProps {
  /** @default true */
  readonly deletionProtection?: boolean;
}

/**
 * The broker's deployment, composed from one construct per concern. This first cut holds the
 * chain table and its key; the functions, schedule, onboarding URL and observability follow.
 */
export class BrokerStack extends Stack {
  readonly chains: ChainTableConstruct;
  readonly key: Key;

  constructor(scope: Construct, id: string, props: BrokerStackProps = {}) {
    super(scope, id, props);
    this.key = new Key(this, "TokenKey", {
      enableKeyRotation: true,
      description:
        "exact-token-broker: encrypts the chain table and, through the Encryption SDK, every token",
    });
    this.chains = new ChainTableConstruct(this, "Chains", {
      encryptionKey: this.key,
      deletionProtection: props.deletionProtection ?? true,
    });
  }
}
