import { afterAll, describe, expect, it } from "vitest";
import { NETNS_SKIP_REASON } from "../support/netns";
import { formatLabTable } from "./lab/lab-report";
import { SCENARIOS, type ScenarioResult } from "./lab/scenarios";

if (NETNS_SKIP_REASON) console.warn(`SKIPPED the LAN lab (${SCENARIOS.length} scenarios): ${NETNS_SKIP_REASON}`);

describe.skipIf(NETNS_SKIP_REASON !== null)("the LAN lab: faults on a network of namespaces", () => {
  const results: ScenarioResult[] = [];
  afterAll(() => {
    if (results.length > 0) process.stdout.write(formatLabTable(results));
  });

  for (const scenario of SCENARIOS) {
    it(scenario.name, async () => {
      const result = { name: scenario.name, ...(await scenario.run()) };
      results.push(result);
      expect(result.problems).toEqual([]);
      expect(result.tally).toMatchObject({ lost: 0, duplicated: 0, wrongSeed: 0 });
      expect(result.tally.stored).toBe(result.tally.expected);
    }, 300_000);
  }
});
