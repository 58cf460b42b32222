import { InvokeCommand, type InvokeCommandOutput, LambdaClient } from "@aws-sdk/client-lambda";
import { type CallerIdentity, REGION_PATTERN } from "../auth/caller-identity.js";
import { ConfigurationError } from "../errors.js";
import {
  errorFromFunctionError,
  errorFromInvokeFailure,
  InvalidVendAnswer,
  TokenVendInvokeError,
} from "./errors.js";
import { type AwsCredentialsProvider, IdentitySigner } from "./identity-signer.js";

/** How the invoker reaches token-vend and proves who it is (TokenClientOptions' share). */
export interface VendInvokerOptions {
  readonly lambda?: LambdaClient;
  readonly now: () => number;
  readonly serverId?: string;
  readonly region?: string;
  readonly stsEndpoint?: string;
  readonly credentials?: AwsCredentialsProvider;
}

/** token-vend's event (README, "token-vend"), without the identity the invoker adds. */
export interface VendRequest {
  readonly connectionId: string;
  readonly minValiditySeconds: number;
  /**
   * The generation whose token Exact refused. Sent only when set: a broker older than issue 11
   * refuses unknown fields (ValidationError).
   */
  readonly rejectedGeneration?: number;
}

const SERVER_ID_ENV = "TOKEN_VEND_SERVER_ID";
/** `arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]` */
const FUNCTION_ARN_REGION = /^arn:[a-z-]+:lambda:([a-z0-9-]+):/;

/**
 * One synchronous invoke of token-vend with this consumer's signed identity: the answer's text,
 * or token-vend's failure as the typed error it threw.
 */
export class VendInvoker {
  readonly #options: VendInvokerOptions;
  #lambda: LambdaClient | undefined;
  /** One signer per (server ID, region): each keeps its signed identity for 5 minutes. */
  readonly #signers = new Map<string, IdentitySigner>();

  constructor(options: VendInvokerOptions) {
    this.#options = options;
    this.#lambda = options.lambda;
  }

  /**
   * The answer's JSON text (it holds a token: never log it).
   * @throws the `BrokerError` subclass token-vend threw, `TokenVendInvokeError` when Lambda
   *   refused the invoke or the identity could not be signed, `InvalidVendAnswer` for no answer,
   *   `ConfigurationError` when there is no region to sign for
   */
  async invoke(functionName: string, request: VendRequest): Promise<string> {
    const callerIdentity = await this.#callerIdentity(functionName);
    this.#lambda ??= new LambdaClient({});
    let output: InvokeCommandOutput;
    try {
      output = await this.#lambda.send(
        new InvokeCommand({
          FunctionName: functionName,
          InvocationType: "RequestResponse",
          Payload: JSON.stringify({
            connectionId: request.connectionId,
            minValiditySeconds: request.minValiditySeconds,
            ...(request.rejectedGeneration !== undefined
              ? { rejectedGeneration: request.rejectedGeneration }
              : {}),
            ...(callerIdentity ? { callerIdentity } : {}),
          }),
        }),
      );
    } catch (error) {
      throw errorFromInvokeFailure(functionName, error);
    }
    // A real LambdaClient always answers an object; a mocked one may not.
    if (!output) throw new InvalidVendAnswer("token-vend gave no answer");
    const text = output.Payload ? new TextDecoder().decode(output.Payload) : "";
    if (output.FunctionError) throw errorFromFunctionError(output.FunctionError, text);
    return text;
  }

  /** This consumer's signed identity for the broker, or undefined when no server ID is configured. */
  async #callerIdentity(functionName: string): Promise<CallerIdentity | undefined> {
    const serverId = this.#options.serverId ?? process.env[SERVER_ID_ENV];
    if (!serverId) return undefined;
    const region =
      this.#options.region ?? FUNCTION_ARN_REGION.exec(functionName)?.[1] ?? process.env.AWS_REGION ?? "";
    if (!REGION_PATTERN.test(region))
      throw new ConfigurationError(
        "no region to sign the caller identity for: set AWS_REGION, pass region, or invoke token-vend by its ARN",
      );
    const key = `${serverId}\n${region}`;
    let signer = this.#signers.get(key);
    if (!signer) {
      const { stsEndpoint, credentials } = this.#options;
      signer = new IdentitySigner({
        serverId,
        region,
        now: this.#options.now,
        ...(stsEndpoint ? { stsEndpoint } : {}),
        ...(credentials ? { credentials } : {}),
      });
      this.#signers.set(key, signer);
    }
    try {
      return await signer.identity();
    } catch (error) {
      const name = error instanceof Error ? error.name : "Error";
      throw new TokenVendInvokeError(
        `could not sign this consumer's AWS identity for token-vend (${name}): check the function's credentials`,
        { cause: error, awsErrorName: name, retryAfterSeconds: 1 },
      );
    }
  }
}
