import { defineCampaign } from "./campaign.js";
import { vendBreaks, vendProbes, vendRefreshes, vendServes } from "./scenarios.js";

// The fault campaign (campaign.ts) for the vend door: a vend that refreshes, one that probes, one
// served from the stored token, and one that finds the chain dead.
await defineCampaign("vend", [vendRefreshes, vendProbes, vendServes, vendBreaks]);
