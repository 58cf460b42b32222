import { defaultProvider } from "@aws-sdk/credential-provider-node";
import { Sha256 } from "@smithy/core/checksum";
import { HttpRequest } from "@smithy/core/protocols";
import { SignatureV4 } from "@smithy/signature-v4";
import {
  type CallerIdentity,
  FORM_CONTENT_TYPE,
  GET_CALLER_IDENTITY_BODY,
  SERVER_ID_HEADER,
  stsEndpointFor,
} from "../auth/caller-identity.js";

/** AWS credentials as the SDK's providers give them (`@smithy/types` AwsCredentialIdentity). */
export interface AwsCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
  readonly expiration?: Date;
}

export type AwsCredentialsProvider = () => Promise<AwsCredentials>;

export interface IdentitySignerOptions {
  /** The broker's BROKER_SERVER_ID (its stack's `BrokerServerId` output). */
  readonly serverId: string;
  /** token-vend's region: the broker verifies at STS there, so the request is signed for it. */
  readonly region: string;
  /** Where STS is: only tests change it (moto_server). @default https://sts.<region>.amazonaws.com */
  readonly stsEndpoint?: string;
  /**
   * The consumer's own credentials. @default the AWS SDK's default provider chain (in Lambda:
   * the function role's credentials from the environment)
   */
  readonly credentials?: AwsCredentialsProvider;
  /** Epoch ms. @default Date.now */
  readonly now?: () => number;
}

/**
 * A signed identity is reused this long, then signed again. The broker accepts a signature for
 * 15 minutes (STS's window) and caches what it verified under the signature: reuse keeps the
 * broker's warm path free of STS calls, and 5 minutes leaves 10 for clock skew and slow invokes.
 */
export const RESIGN_AFTER_MS = 5 * 60 * 1000;
/** Credentials that end within this are not used to sign: the broker may call STS a little later. */
const CREDENTIALS_MARGIN_MS = 60 * 1000;

interface Signed {
  readonly identity: CallerIdentity;
  /** Epoch ms after which the identity is signed again. */
  readonly renewAtMs: number;
}

/**
 * Signs the `sts:GetCallerIdentity` request that proves this consumer's AWS identity to
 * token-vend (`callerIdentity`, lib/auth/caller-identity.ts) with AWS's own SigV4 signer and the
 * consumer's own credentials; never sends it anywhere itself. The request names the broker
 * (`X-Exact-Broker-Server-ID`, signed) and is reused for 5 minutes; concurrent callers share one
 * signing. No credential leaves this object but inside the signed headers token-vend forwards to STS.
 */
export class IdentitySigner {
  readonly #serverId: string;
  readonly #region: string;
  readonly #endpoint: URL;
  readonly #credentials: AwsCredentialsProvider;
  readonly #now: () => number;
  #signed: Promise<Signed> | undefined;

  constructor(options: IdentitySignerOptions) {
    this.#serverId = options.serverId;
    this.#region = options.region;
    this.#endpoint = new URL(options.stsEndpoint ?? stsEndpointFor(options.region));
    this.#credentials = options.credentials ?? defaultProvider();
    this.#now = options.now ?? Date.now;
  }

  /** A signed identity younger than 5 minutes (signing a new one when needed). */
  async identity(): Promise<CallerIdentity> {
    const current = this.#signed;
    if (current) {
      const signed = await current.catch(() => undefined);
      if (signed && this.#now() < signed.renewAtMs) return signed.identity;
      // Another caller may have started a new signing meanwhile: join it rather than sign twice.
      if (this.#signed !== current) return this.identity();
    }
    const next = this.#sign();
    this.#signed = next;
    next.catch(() => {
      if (this.#signed === next) this.#signed = undefined;
    });
    return (await next).identity;
  }

  async #sign(): Promise<Signed> {
    const credentials = await this.#credentials();
    const nowMs = this.#now();
    const signer = new SignatureV4({ service: "sts", region: this.#region, credentials, sha256: Sha256 });
    const request = new HttpRequest({
      method: "POST",
      protocol: this.#endpoint.protocol,
      hostname: this.#endpoint.hostname,
      ...(this.#endpoint.port ? { port: Number(this.#endpoint.port) } : {}),
      path: "/",
      headers: {
        host: this.#endpoint.host,
        "content-type": FORM_CONTENT_TYPE,
        [SERVER_ID_HEADER.toLowerCase()]: this.#serverId,
      },
      body: GET_CALLER_IDENTITY_BODY,
    });
    const signed = await signer.sign(request, { signingDate: new Date(nowMs) });
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(signed.headers)) headers[name] = String(value);
    const credentialsEndMs = credentials.expiration?.getTime() ?? Number.POSITIVE_INFINITY;
    return {
      identity: { headers, body: GET_CALLER_IDENTITY_BODY },
      renewAtMs: Math.min(nowMs + RESIGN_AFTER_MS, credentialsEndMs - CREDENTIALS_MARGIN_MS),
    };
  }
}
