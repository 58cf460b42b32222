import {
  seedScopeViolated,
  vendAppRejected,
  vendHeldByRejection,
  vendProbesRejectedApp,
  vendRechecksScope,
  vendRejectedScopeViolated,
  vendResendsNewSecret,
} from "./app-rejection-scenarios.js";
import { defineCampaign } from "./campaign.js";

// The fault campaign (campaign.ts) for an app Exact rejects (issue 9): invalid_client with the
// secret re-read and resent when it changed, or not resent (the app rejected); the app's other
// chain held, and its paced probe; "Application Scope Violated" on /current/Me at a seed's
// identity check, at the app's re-check once Me answers again, and at a reported token's check.
await defineCampaign("bad-days-app", [
  vendResendsNewSecret,
  vendAppRejected,
  vendHeldByRejection,
  vendProbesRejectedApp,
  seedScopeViolated,
  vendRechecksScope,
  vendRejectedScopeViolated,
]);
