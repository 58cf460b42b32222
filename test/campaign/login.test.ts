import { defineCampaign } from "./campaign.js";
import { healCode, implicitLogin } from "./scenarios.js";
import { operatorHealsReauth } from "./state-scenarios.js";

// The fault campaign (campaign.ts) for the doors that log in: the heal of a broken code-mode
// chain (login, code exchange), an implicit-mode login (response_type=token), and an operator's
// heal of a chain at REAUTH_REQUIRED.
await defineCampaign("login", [healCode, implicitLogin, operatorHealsReauth]);
