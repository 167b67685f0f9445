/**
 * npm run lab — the fault and attack scenarios of the LAN lab on network namespaces
 * (root needed), the table of results, then one JSON line: scenarios, passed,
 * images_lost, images_duplicated. `npm test` runs the same scenarios.
 */
import { NETNS_SKIP_REASON } from "../../support/netns";
import { formatLabTable, passed } from "./lab-report";
import { SCENARIOS, type ScenarioResult } from "./scenarios";

if (NETNS_SKIP_REASON) {
  process.stdout.write(`the LAN lab did not run: it ${NETNS_SKIP_REASON}\n`);
  process.exit(1);
}
const results: ScenarioResult[] = [];
for (const scenario of SCENARIOS) {
  process.stdout.write(`${scenario.name} …\n`);
  try {
    results.push({ name: scenario.name, ...(await scenario.run()) });
  } catch (error) {
    const tally = { expected: 0, stored: 0, lost: 0, duplicated: 0, wrongSeed: 0 };
    results.push({ name: scenario.name, tally, problems: [(error as Error).message], notes: [] });
  }
}
process.stdout.write(formatLabTable(results));
const summary = {
  scenarios: results.length,
  passed: results.filter(passed).length,
  images_lost: results.reduce((n, r) => n + r.tally.lost, 0),
  images_duplicated: results.reduce((n, r) => n + r.tally.duplicated, 0),
};
process.stdout.write(`${JSON.stringify(summary)}\n`);
process.exit(summary.passed === summary.scenarios ? 0 : 1);
