// Deterministic simulation (DESIGN section 7): honest TCP endpoints through the agent, an
// impaired agent-gateway wire and the gateway, many seeds per scenario. Each run checks
// byte-exact delivery, both FINs, and rules 1-5 of DESIGN section 3 on every wire packet (see
// sim.ts). Runs are pure functions of (scenario, seed): rerun a failure with the command its
// message prints. SIM_SEED=<n> runs only seed n of every scenario.
import { plaintextRunsIn } from '../../pipeline/streams';
import { plaintextRuns } from './leaks';
import { type Scenario, type SimReport, runSim } from './sim';
import { CLEAN, type Impairment, Rng } from './wire';

const wire = (over: Partial<Impairment>): Impairment => ({ ...CLEAN, delayMs: 5, reorderDelayMs: 30, ...over });
const CHAOS = wire({ loss: 0.03, duplicate: 0.05, reorder: 0.1 });

/** Stream sizes from empty to ~300 KB, each direction independently. */
function mixedSize(rng: Rng): number {
  const r = rng.float();
  if (r < 0.05) return 0;
  if (r < 0.15) return rng.int(1, 100);
  if (r < 0.5) return rng.int(100, 20_000);
  if (r < 0.85) return rng.int(20_000, 100_000);
  return rng.int(200_000, 300_000);
}
const mixed = (rng: Rng): [number, number] => [mixedSize(rng), mixedSize(rng)];
const between = (lo: number, hi: number) => (rng: Rng): [number, number] => [rng.int(lo, hi), rng.int(lo, hi)];

const base = { version: 4 as const, wire: CHAOS, isnNearWrap: false, ecn: false, sizes: mixed, shortSegmentChance: 0.1, probeChance: 0 };

interface Plan {
  scenario: Scenario;
  seeds: number;
  /** Figures that must be non-zero summed over the scenario's seeds (the impairment really happened). */
  exercised: string[];
}

const PLANS: Plan[] = [
  { scenario: { ...base, name: 'clean', wire: wire({}) }, seeds: 5, exercised: [] },
  { scenario: { ...base, name: 'loss5', wire: wire({ loss: 0.05 }) }, seeds: 5, exercised: ['wireLost', 'retransmits'] },
  { scenario: { ...base, name: 'loss-dup-reorder', wire: CHAOS }, seeds: 6, exercised: ['wireLost', 'wireDuplicated', 'wireReordered', 'retransmits'] },
  { scenario: { ...base, name: 'isn-wrap', isnNearWrap: true, sizes: between(8_000, 200_000) }, seeds: 5, exercised: ['retransmits'] },
  { scenario: { ...base, name: 'ecn-syn', ecn: true, wire: wire({ loss: 0.02 }) }, seeds: 3, exercised: [] },
  { scenario: { ...base, name: 'sack-heavy', wire: wire({ loss: 0.1, reorder: 0.05 }), sizes: between(20_000, 150_000) }, seeds: 5, exercised: ['sackBlocks', 'fastRetransmits', 'rtoFires'] },
  { scenario: { ...base, name: 'ipv6', version: 6 }, seeds: 4, exercised: ['retransmits'] },
  { scenario: { ...base, name: 'ipv6-isn-wrap', version: 6, isnNearWrap: true, sizes: between(8_000, 100_000) }, seeds: 2, exercised: [] },
  {
    scenario: { ...base, name: 'probes-short-segments', wire: wire({ loss: 0.02, reorder: 0.05 }), shortSegmentChance: 0.4, probeChance: 0.15, sizes: between(5_000, 60_000) },
    seeds: 3,
    exercised: ['probes', 'strippedProbes'],
  },
  { scenario: { ...base, name: 'forged-rst-fin', forge: 'mid-transfer', sizes: between(30_000, 120_000) }, seeds: 3, exercised: ['forged', 'authFailed'] },
  { scenario: { ...base, name: 'forged-rst-fin-v6', version: 6, forge: 'mid-transfer', sizes: between(30_000, 120_000) }, seeds: 1, exercised: ['forged', 'authFailed'] },
];

/** Fixed edge sizes for the first seeds of the clean scenario: empty both ways, then ~300 KB both ways. */
const EDGE_SIZES: Record<number, [number, number]> = { 1: [0, 0], 2: [300_000, 300_000], 3: [1, 0] };

const only = process.env.SIM_SEED === undefined ? null : Number(process.env.SIM_SEED);
if (only !== null && !Number.isInteger(only)) throw new Error(`SIM_SEED must be an integer, got '${process.env.SIM_SEED}'`);

function seedsOf(plan: Plan): number[] {
  if (only !== null) return [only];
  return Array.from({ length: plan.seeds }, (_, i) => i + 1);
}

function rerun(name: string, seed: number): string {
  return `SIM_SEED=${seed} npx jest test/sim -t '${name} seed=${seed}$'`;
}

describe('simulation', () => {
  for (const plan of PLANS) {
    describe(plan.scenario.name, () => {
      const totals: Record<string, number> = {};
      for (const seed of seedsOf(plan)) {
        test(`${plan.scenario.name} seed=${seed}`, () => {
          const scenario = plan.scenario.name === 'clean' && EDGE_SIZES[seed] ? { ...plan.scenario, sizes: () => EDGE_SIZES[seed] as [number, number] } : plan.scenario;
          const report: SimReport = runSim(scenario, seed);
          for (const [k, v] of Object.entries(report.figures)) totals[k] = (totals[k] ?? 0) + v;
          if (report.violations.length > 0) {
            throw new Error(`scenario ${plan.scenario.name}, seed ${seed}: ${report.violations.length} violation(s)\n  ${report.violations.join('\n  ')}\nfigures ${JSON.stringify(report.figures)}\nrerun: ${rerun(plan.scenario.name, seed)}`);
          }
        });
      }
      if (only === null && plan.exercised.length > 0) {
        test(`${plan.scenario.name}: the seeds exercised ${plan.exercised.join(', ')}`, () => {
          for (const k of plan.exercised) expect({ [k]: totals[k] ?? 0 }).not.toEqual({ [k]: 0 });
        });
      }
    });
  }
});

describe('rule 1 detector', () => {
  test('agrees with pipeline plaintextRunsIn, including planted leaks at any offset', () => {
    const rng = new Rng('leaks');
    const secret = rng.bytes(3000);
    const hay = [rng.bytes(1400), rng.bytes(700)];
    expect(plaintextRuns([secret], hay)).toBe(0);
    const leaky = rng.bytes(1400);
    leaky.set(secret.subarray(1000, 1040), 333); // 40 bytes: 25 runs of 16
    const withLeak = [...hay, leaky];
    expect(plaintextRuns([secret], withLeak)).toBe(25);
    expect(plaintextRunsIn([secret], withLeak)).toBe(25);
    expect(plaintextRuns([secret.subarray(0, 15)], [secret])).toBe(0);
  });
});
