import { defineCampaign } from "./campaign.js";
import { implicitLogin } from "./scenarios.js";

// The fault campaign (campaign.ts) for an implicit-mode login (response_type=token).
await defineCampaign("login", [implicitLogin]);
