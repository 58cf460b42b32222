import { BaseSequencer, type TestSpecification } from "vitest/node";

/** The fault campaign's files (test/campaign/README.md): tens of seconds each, the run's longest. */
const CAMPAIGN_FILE = /\/test\/campaign\/[^/]+\.test\.ts$/;

/** 0: a campaign file; 1: a file of the project that shares its workers (vitest.config.ts); 2: the others. */
function rank(file: TestSpecification): number {
  if (CAMPAIGN_FILE.test(file.moduleId)) return 0;
  return file.project.config.isolate === false ? 1 : 2;
}

/**
 * Vitest's order, except that the fault campaign's files start first, and the files that share
 * their workers come next, together. Without timings of its own (a fresh clone, as CI runs it)
 * vitest starts the larger files first, and the campaign's are a few lines each: they started
 * last, and the run ended with one worker on the last of them while the other had nothing left to
 * do. Longest first, the short files fill both workers at the end. A worker is kept for the next
 * file only while the next one queued shares workers too, hence those files in one run.
 */
export default class CampaignFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    return [0, 1, 2].flatMap((r) => sorted.filter((file) => rank(file) === r));
  }
}
