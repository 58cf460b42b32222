import { defineCampaign } from "./campaign.js";
import { healCode } from "./scenarios.js";

// The fault campaign (campaign.ts) for the heal door in code mode: a login and a code exchange.
await defineCampaign("heal", [healCode]);
