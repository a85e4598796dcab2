// On-demand sweep: every scenario of the suite over many more seeds, to look for rare failures.
// Skipped unless asked for:
//   SIM_SWEEP=500 npx jest test/sim/sweep            (seeds 1..500 of every scenario)
//   SIM_SWEEP=500 SIM_SWEEP_ONLY=sack-heavy npx jest test/sim/sweep
// A failure prints each failing seed with the command that reruns it in the suite.
import { PLANS, scenarioFor } from './scenarios';
import { runSim } from './sim';

const count = Number(process.env.SIM_SWEEP ?? 0);
const onlyScenario = process.env.SIM_SWEEP_ONLY;

(count > 0 ? test : test.skip)(`sweep: ${count} seeds per scenario`, () => {
  const failures: string[] = [];
  for (const plan of PLANS) {
    if (onlyScenario !== undefined && plan.scenario.name !== onlyScenario) continue;
    for (let seed = 1; seed <= count; seed++) {
      const report = runSim(scenarioFor(plan, seed), seed);
      if (report.violations.length > 0) {
        failures.push(`${plan.scenario.name} seed=${seed}: ${report.violations[0]}\n    rerun: SIM_SEED=${seed} npx jest test/sim/sim.test.ts -t '${plan.scenario.name} seed=${seed}$'`);
      }
    }
  }
  expect(failures).toEqual([]);
}, 3_600_000);
