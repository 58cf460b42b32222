import { fromEnv } from "@aws-sdk/credential-provider-env";
import { fromHttp } from "@aws-sdk/credential-provider-http";
import { CredentialsProviderError, chain, memoize } from "@smithy/core/config";
import {
  ENV_CMDS_FULL_URI,
  ENV_CMDS_RELATIVE_URI,
  fromContainerMetadata,
  fromInstanceMetadata,
} from "@smithy/credential-provider-imds";
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from "@smithy/types";

/**
 * Bundled in place of `@aws-sdk/credential-provider-node` (lib/infra/bundling.ts, BUNDLE.alias);
 * never imported by code. Every AWS SDK client's default configuration imports that package's
 * `defaultProvider`, which can also read ~/.aws files, SSO, `credential_process`, a web identity
 * token file and `aws login`, each with nested STS/SSO/sign-in clients: 116 KB of token-vend's
 * bundle (issue 12). A Lambda function has none of those: its role's credentials are in its
 * environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN). So the bundles keep
 * the links of the default chain that can apply where they run, in the SDK's order: the
 * environment, then the container credentials endpoint when one is set (as the SDK's
 * `remoteProvider`), else the instance metadata service unless AWS_EC2_METADATA_DISABLED.
 * Outside the bundles (tests, the CLI, `npm start`) the SDK's full chain applies, unchanged.
 */

/** The SDK's option bag (`DefaultProviderInit`): the links take what they know of it. */
type ProviderInit = NonNullable<Parameters<typeof fromEnv>[0]> &
  NonNullable<Parameters<typeof fromHttp>[0]> &
  NonNullable<Parameters<typeof fromInstanceMetadata>[0]>;

/** As the SDK: credentials with an expiry are fetched again on the next use. */
export const credentialsWillNeedRefresh = (credentials: AwsCredentialIdentity): boolean =>
  credentials?.expiration !== undefined;

/** As the SDK: credentials within 5 minutes of their expiry are treated as expired. */
export const credentialsTreatedAsExpired = (credentials: AwsCredentialIdentity): boolean =>
  credentials?.expiration !== undefined && credentials.expiration.getTime() - Date.now() < 300_000;

const ENV_IMDS_DISABLED = "AWS_EC2_METADATA_DISABLED";

function remoteProvider(init: ProviderInit): AwsCredentialIdentityProvider {
  return async () => {
    if (process.env[ENV_CMDS_RELATIVE_URI] || process.env[ENV_CMDS_FULL_URI]) {
      return chain(fromHttp(init), fromContainerMetadata(init))();
    }
    if (process.env[ENV_IMDS_DISABLED] && process.env[ENV_IMDS_DISABLED] !== "false") {
      throw new CredentialsProviderError("EC2 Instance Metadata Service access disabled", {
        logger: init.logger,
      });
    }
    return fromInstanceMetadata(init)();
  };
}

/** The default chain as it applies in a Lambda function, memoized as the SDK memoizes it. */
export const defaultProvider = (init: ProviderInit = {}): AwsCredentialIdentityProvider =>
  memoize(
    chain(fromEnv(init), remoteProvider(init), async () => {
      throw new CredentialsProviderError(
        "Could not load credentials from the environment, a container endpoint or instance metadata " +
          "(the bundles leave out the SDK's profile, SSO and process providers: lib/aws/lambda-credential-provider.ts)",
        { tryNextLink: false, logger: init.logger },
      );
    }),
    credentialsTreatedAsExpired,
    credentialsWillNeedRefresh,
  );
