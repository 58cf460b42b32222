import { defineCampaign } from "./campaign.js";
import { vendRejectedAccepted, vendRejectedRevoked } from "./rejected-scenarios.js";

// The fault campaign (campaign.ts) for a vend with `rejectedGeneration` (a consumer's 401): one
// whose token Exact still accepts, one whose token Exact revoked (a refresh follows). A hang lets
// another consumer report the same generation; after the door, the consumer reports it again.
await defineCampaign("rejected", [vendRejectedAccepted, vendRejectedRevoked]);
