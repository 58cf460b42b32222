import { defineCampaign } from "./campaign.js";
import { healCode, implicitLogin } from "./scenarios.js";

// The fault campaign (campaign.ts) for the doors that log in: the heal of a broken code-mode
// chain (login, code exchange) and an implicit-mode login (response_type=token).
await defineCampaign("login", [healCode, implicitLogin]);
