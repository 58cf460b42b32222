import { defineCampaign } from "./campaign.js";
import { vendBreaks, vendProbes, vendRefreshes, vendServes, vendUndecryptable } from "./scenarios.js";

// The fault campaign (campaign.ts) for the vend door: a vend that refreshes, one that probes, one
// served from the stored token, one that finds the chain dead, one whose refresh token does not decrypt.
await defineCampaign("vend", [vendRefreshes, vendProbes, vendServes, vendBreaks, vendUndecryptable]);
