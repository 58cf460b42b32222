import { defineCampaign } from "./campaign.js";
import {
  healChainlessBlocked,
  vendAtDailyCap,
  vendOddEscalates,
  vendOddProbe,
  vendReachesWarning,
  vendSeesBlock,
} from "./user-state-scenarios.js";

// The fault campaign (campaign.ts) for a user's or a chain's bad days at Exact (issue 9): a block
// seen at the token endpoint, and the login re-check of a BLOCKED connection without a chain; the
// daily token-call cap (TokenCallsHigh at the 180th call; held at 200); odd 4xx answers escalated
// to SUSPECT, and that chain's probe getting the same answer.
await defineCampaign("bad-days-user", [
  vendSeesBlock,
  healChainlessBlocked,
  vendReachesWarning,
  vendAtDailyCap,
  vendOddEscalates,
  vendOddProbe,
]);
