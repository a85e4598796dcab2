// The simulation's scenarios and how many seeds each gets in the suite (sim.test.ts); the
// sweep (sweep.test.ts) runs the same scenarios over many more seeds on demand.
import type { Scenario } from './sim';
import { CLEAN, type Impairment, type Rng } from './wire';

export const wire = (over: Partial<Impairment>): Impairment => ({ ...CLEAN, delayMs: 5, reorderDelayMs: 30, ...over });
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

export const base = { version: 4 as const, wire: CHAOS, isnNearWrap: false, ecn: false, sizes: mixed, shortSegmentChance: 0.1, probeChance: 0 };

export interface Plan {
  scenario: Scenario;
  seeds: number;
  /** Figures that must be non-zero summed over the scenario's seeds (the impairment really happened). */
  exercised: string[];
}

export const PLANS: Plan[] = [
  { scenario: { ...base, name: 'clean', wire: wire({}) }, seeds: 5, exercised: [] },
  { scenario: { ...base, name: 'loss5', wire: wire({ loss: 0.05 }) }, seeds: 5, exercised: ['wireLost', 'retransmits'] },
  { scenario: { ...base, name: 'loss-dup-reorder', wire: CHAOS }, seeds: 6, exercised: ['wireLost', 'wireDuplicated', 'wireReordered', 'retransmits'] },
  { scenario: { ...base, name: 'isn-wrap', isnNearWrap: true, sizes: between(8_000, 200_000) }, seeds: 5, exercised: ['retransmits', 'seqWrapped'] },
  { scenario: { ...base, name: 'handshake-loss', wire: wire({ loss: 0.3 }), sizes: between(0, 4_000) }, seeds: 4, exercised: ['wireLost', 'rtoFires'] },
  { scenario: { ...base, name: 'ecn', ecn: true, wire: wire({ loss: 0.02, ceMark: 0.05 }), sizes: between(2_000, 100_000) }, seeds: 3, exercised: ['ceMarked', 'ceReceived'] },
  { scenario: { ...base, name: 'sack-heavy', wire: wire({ loss: 0.1, reorder: 0.05 }), sizes: between(20_000, 150_000) }, seeds: 5, exercised: ['sackBlocks', 'sackTrimmed', 'fastRetransmits', 'rtoFires'] },
  { scenario: { ...base, name: 'ipv6', version: 6 }, seeds: 4, exercised: ['retransmits'] },
  { scenario: { ...base, name: 'bare-handshake', bareHandshake: true, sizes: between(20_000, 60_000) }, seeds: 2, exercised: [] },
  { scenario: { ...base, name: 'bare-handshake-v6', version: 6, bareHandshake: true, sizes: between(20_000, 60_000) }, seeds: 1, exercised: [] },
  { scenario: { ...base, name: 'ipv6-isn-wrap', version: 6, isnNearWrap: true, sizes: between(8_000, 100_000) }, seeds: 2, exercised: ['seqWrapped'] },
  {
    scenario: { ...base, name: 'probes-short-segments', wire: wire({ loss: 0.02, reorder: 0.05 }), shortSegmentChance: 0.4, probeChance: 0.15, sizes: between(5_000, 60_000) },
    seeds: 3,
    exercised: ['probes', 'strippedProbes'],
  },
  { scenario: { ...base, name: 'unprotected-port', expect: 'plaintext', sizes: between(0, 60_000) }, seeds: 2, exercised: [] },
  { scenario: { ...base, name: 'parallel-flows', parallel: 4, sizes: between(0, 40_000) }, seeds: 3, exercised: ['concurrentFlows'] },
  { scenario: { ...base, name: 'parallel-slow-keying', parallel: 3, version: 6, keyingHopMs: [20, 120], sizes: between(0, 30_000) }, seeds: 2, exercised: ['concurrentFlows', 'synResentWhileKeying'] },
  { scenario: { ...base, name: 'reuse-tuple', connections: 3, wire: wire({ loss: 0.02, reorder: 0.05 }), sizes: between(0, 30_000) }, seeds: 3, exercised: ['reusedTuple'] },
  { scenario: { ...base, name: 'slow-keying', keyingHopMs: [20, 120], wire: wire({ loss: 0.05, reorder: 0.05 }) }, seeds: 4, exercised: ['synResentWhileKeying'] },
  { scenario: { ...base, name: 'keying-timeout-refused', keyingHopMs: [400, 500], expect: 'refused', wire: wire({ reorder: 0.05 }) }, seeds: 2, exercised: ['refusalRsts'] },
  {
    scenario: { ...base, name: 'garbage-keepalives', wire: wire({ loss: 0.02 }), probeChance: 0.2, garbageProbes: true, sizes: between(5_000, 60_000) },
    seeds: 2,
    exercised: ['probes', 'strippedProbes'],
  },
  { scenario: { ...base, name: 'client-abort', wire: wire({ reorder: 0.05 }), abort: 'client', sizes: between(20_000, 80_000) }, seeds: 2, exercised: [] },
  { scenario: { ...base, name: 'server-abort', version: 6, wire: wire({ reorder: 0.05 }), abort: 'server', sizes: between(20_000, 80_000) }, seeds: 2, exercised: [] },
  { scenario: { ...base, name: 'forged-rst-fin', forge: 'mid-transfer', sizes: between(30_000, 120_000) }, seeds: 3, exercised: ['forged', 'authFailed'] },
  { scenario: { ...base, name: 'forged-rst-fin-v6', version: 6, forge: 'mid-transfer', sizes: between(30_000, 120_000) }, seeds: 1, exercised: ['forged', 'authFailed'] },
];

/** Fixed edge sizes for the first seeds of the clean scenario: empty both ways, then ~300 KB both ways. */
export const EDGE_SIZES: Record<number, [number, number]> = { 1: [0, 0], 2: [300_000, 300_000], 3: [1, 0] };

/** The scenario a plan runs for `seed` (the clean scenario's first seeds use fixed edge sizes). */
export function scenarioFor(plan: Plan, seed: number): Scenario {
  const edge = plan.scenario.name === 'clean' ? EDGE_SIZES[seed] : undefined;
  return edge ? { ...plan.scenario, sizes: () => edge } : plan.scenario;
}
