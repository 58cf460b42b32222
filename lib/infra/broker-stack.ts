import { Stack, type StackProps } from "aws-cdk-lib";
import type { EventBus } from "aws-cdk-lib/aws-events";
import type { Grant, IGrantable } from "aws-cdk-lib/aws-iam";
import type { Construct } from "constructs";
import type { BranchKeyStoreConstruct } from "./branch-key-store.js";
import type { BrokerFunctions } from "./broker-functions.js";
import { addBrokerOutputs } from "./broker-outputs.js";
import type { BrokerSecrets } from "./broker-secrets.js";
import type { ChainTableConstruct } from "./chain-table.js";
import { ExactTokenBroker, type ExactTokenBrokerProps } from "./exact-token-broker.js";
import type { Observability } from "./observability.js";
import type { OnboardingUrl } from "./onboarding-url.js";
import type { RateBudgetTableConstruct } from "./rate-budget-table.js";
import type { TokenKey } from "./token-key.js";
import type { VendGrantOptions } from "./vend-grants.js";

/** The stack's own props and the broker's (ExactTokenBrokerProps: every setting, with its default). */
export interface BrokerStackProps extends StackProps, ExactTokenBrokerProps {}

/**
 * The bundled app's stack (`cdk deploy`): one {@link ExactTokenBroker} and the outputs operators
 * and consumers read. It keeps the public surface it had before the broker became a construct,
 * so apps that grant through `brokerStack.grantVend` keep working.
 */
export class BrokerStack extends Stack {
  readonly broker: ExactTokenBroker;
  readonly tokenKey: TokenKey;
  readonly chains: ChainTableConstruct;
  /** The branch key store (outputs `BranchKeyStoreTableName`, `BranchKeyId`). */
  readonly branchKeys: BranchKeyStoreConstruct;
  readonly secrets: BrokerSecrets;
  readonly eventBus: EventBus;
  readonly functions: BrokerFunctions;
  readonly onboarding: OnboardingUrl;
  readonly observability: Observability;
  /** The consumers' shared rate budget table (output `RateBudgetTableName`). */
  readonly rateBudget: RateBudgetTableConstruct;
  /** BROKER_SERVER_ID: what consumers set as TOKEN_VEND_SERVER_ID (output `BrokerServerId`). */
  readonly serverId: string;

  constructor(scope: Construct, id: string, props: BrokerStackProps = {}) {
    super(scope, id, {
      description:
        "exact-token-broker: keeps Exact Online refresh-token chains alive and vends access tokens",
      ...props,
    });
    // "Default" is the one construct ID CDK leaves out of logical IDs (and of Names.uniqueId and
    // node addresses), so every resource keeps the logical ID it had when this stack created it
    // directly. A changed logical ID is a new resource to CloudFormation: the chain table and the
    // token key would be replaced, and every chain lost. overrideLogicalId would pin only the
    // resources listed, and silently miss any added later. test/infra/broker-construct.test.ts
    // compares the synthesized IDs with the recorded ones.
    this.broker = new ExactTokenBroker(this, "Default", props);
    this.tokenKey = this.broker.tokenKey;
    this.chains = this.broker.chains;
    this.branchKeys = this.broker.branchKeys;
    this.secrets = this.broker.secrets;
    this.eventBus = this.broker.eventBus;
    this.functions = this.broker.functions;
    this.onboarding = this.broker.onboarding;
    this.observability = this.broker.observability;
    this.rateBudget = this.broker.rateBudget;
    this.serverId = this.broker.serverId;
    addBrokerOutputs(this, this.broker);
  }

  /** {@link ExactTokenBroker.grantVend}: the invoke permission and, with options, the grantee's grants. */
  grantVend(grantee: IGrantable, options: VendGrantOptions = {}): Grant {
    return this.broker.grantVend(grantee, options);
  }
}
