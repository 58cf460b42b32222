import { ValidationError } from "../errors.js";

/**
 * Who a grant names and who a caller is, as one comparable string: the principal key.
 *
 * STS's GetCallerIdentity answers a role's session as `arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION`:
 * the role's path is gone (IAM User Guide, "IAM identifiers": assumed-role ARNs carry the role
 * name only). A role's name is unique in its account whatever its path, so a grant that names a
 * role ARN (`arn:aws:iam::ACCOUNT:role/path/NAME`) matches on account and role name:
 * both sides become `arn:aws:iam::ACCOUNT:role/NAME`. Every session of the role matches.
 *
 * An IAM user's ARN comes back from STS whole (path included), so users match on their ARN.
 * Other callers (the account root, federated users) keep their ARN: no grant can name them.
 */

/** The partitions AWS has today (`aws`, `aws-cn`, `aws-us-gov`, the isolated `aws-iso*`). */
const ARN = /^arn:(aws|aws-cn|aws-us-gov|aws-iso(?:-[a-z])?):(iam|sts)::(\d{12}):(.+)$/;
/** IAM's own name rule for users and roles: 1–64 of `A-Za-z0-9+=,.@_-`. */
const IAM_NAME = "[\\w+=,.@-]{1,64}";
/** An IAM path: `/`, or `/` plus segments each ending in `/`, up to 512 characters. */
const IAM_PATH = "/(?:[\\x21-\\x7e]*/)?";
const ROLE = new RegExp(`^role(${IAM_PATH})(${IAM_NAME})$`);
const USER = new RegExp(`^user(${IAM_PATH})(${IAM_NAME})$`);
const ASSUMED_ROLE = new RegExp(`^assumed-role/(${IAM_NAME})/[\\w+=,.@-]{2,64}$`);

interface ParsedArn {
  readonly partition: string;
  readonly service: string;
  readonly account: string;
  readonly resource: string;
}

function parseArn(arn: string): ParsedArn | undefined {
  const match = ARN.exec(arn);
  if (!match) return undefined;
  const [, partition = "", service = "", account = "", resource = ""] = match;
  return { partition, service, account, resource };
}

const roleKey = (arn: ParsedArn, name: string): string =>
  `arn:${arn.partition}:iam::${arn.account}:role/${name}`;

/**
 * The key a grant is stored under, from the ARN an operator (`exact-broker grant --principal`)
 * or the CDK (`grantVend`) names: a role ARN loses its path, a user ARN stays as it is.
 *
 * @throws ValidationError for anything else (an assumed-role session, a group, a malformed ARN),
 *   saying what to name instead.
 */
export function grantPrincipalOf(arn: string): string {
  const parsed = parseArn(arn);
  if (parsed?.service === "iam") {
    const role = ROLE.exec(parsed.resource);
    if (role?.[2]) return roleKey(parsed, role[2]);
    if (USER.test(parsed.resource)) return arn;
  }
  if (parsed?.service === "sts") {
    const session = ASSUMED_ROLE.exec(parsed.resource);
    if (session?.[1]) {
      throw new ValidationError(
        `--principal names a role session (${arn}); grant the role instead: ${roleKey(parsed, session[1])}`,
      );
    }
  }
  throw new ValidationError(
    `--principal must be an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME, any path) or an IAM user ARN ` +
      `(arn:aws:iam::ACCOUNT:user/NAME), got "${arn}"`,
  );
}

/**
 * The key a verified caller is matched by, from the ARN STS answered: an assumed role's session
 * becomes its role (`arn:…:iam::ACCOUNT:role/NAME`); any other ARN stays as it is.
 */
export function callerPrincipalOf(stsArn: string): string {
  const parsed = parseArn(stsArn);
  const session = parsed?.service === "sts" ? ASSUMED_ROLE.exec(parsed.resource) : null;
  return parsed && session?.[1] ? roleKey(parsed, session[1]) : stsArn;
}
