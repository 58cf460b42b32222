/**
 * `npx tsx scripts/capture-logical-ids.ts`: records the deployed stack's logical IDs and types in
 * test/infra/fixtures/stack-logical-ids.json, which test/infra/broker-construct.test.ts compares every
 * synth with. Run it only for a change that is meant to replace, add or remove resources, and
 * read the fixture's diff before committing it: a logical ID that disappears is a resource
 * CloudFormation deletes on the next deploy (for the chain table or the token key, every chain).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { createFixtureApp, FIXTURE_PATH, logicalIdsOf } from "../test/infra/logical-ids.js";

const ids = logicalIdsOf(createFixtureApp().stack);
mkdirSync(dirname(FIXTURE_PATH), { recursive: true });
writeFileSync(FIXTURE_PATH, `${JSON.stringify(ids, null, 2)}\n`);
console.log(`${FIXTURE_PATH}: ${Object.keys(ids.resources).length} resources, ${ids.outputs.length} outputs`);
