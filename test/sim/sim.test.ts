// Deterministic simulation (DESIGN section 7): honest TCP endpoints through the agent, an
// impaired agent-gateway wire and the gateway, many seeds per scenario. Each run checks
// byte-exact delivery, both FINs, and rules 1-5 of DESIGN section 3 on every wire packet (see
// sim.ts). Runs are pure functions of (scenario, seed): rerun a failure with the command its
// message prints. SIM_SEED=<n> runs only seed n of every scenario.
import { emitIpTcp, parseIpTcp } from '../../common/wire/packet';
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
      // Each (scenario, seed) runs once however the tests are filtered: the seed tests and the
      // coverage test below share the reports.
      const reports = new Map<number, SimReport>();
      const reportOf = (seed: number): SimReport => {
        let report = reports.get(seed);
        if (report === undefined) {
          const edge = plan.scenario.name === 'clean' ? EDGE_SIZES[seed] : undefined;
          report = runSim(edge ? { ...plan.scenario, sizes: () => edge } : plan.scenario, seed);
          reports.set(seed, report);
        }
        return report;
      };
      for (const seed of seedsOf(plan)) {
        test(`${plan.scenario.name} seed=${seed}`, () => {
          const report = reportOf(seed);
          if (report.violations.length > 0) {
            throw new Error(`scenario ${plan.scenario.name}, seed ${seed}: ${report.violations.length} violation(s)\n  ${report.violations.join('\n  ')}\nfigures ${JSON.stringify(report.figures)}\nrerun: ${rerun(plan.scenario.name, seed)}`);
          }
        });
      }
      if (only === null && plan.exercised.length > 0) {
        test(`${plan.scenario.name}: the seeds exercised ${plan.exercised.join(', ')}`, () => {
          const totals: Record<string, number> = {};
          for (const seed of seedsOf(plan)) for (const [k, v] of Object.entries(reportOf(seed).figures)) totals[k] = (totals[k] ?? 0) + v;
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

/** Re-emits a wire packet with fields changed (the tag no longer verifies; that is not the point). */
function reemit(packet: Uint8Array, change: (t: { seq: number; payload: Uint8Array }) => { seq?: number; payload?: Uint8Array }): Uint8Array {
  const parsed = parseIpTcp(packet);
  if (!parsed.ok) return packet;
  const { ip, tcp } = parsed.value;
  const out = emitIpTcp({ ip, tcp: { ...tcp, ...change(tcp) } });
  return out.ok ? out.value : packet;
}

function violationsOf(scenario: Scenario): string {
  return runSim(scenario, 1).violations.join('\n');
}

describe('the checks catch a broken engine (the wire is tampered with after the engine)', () => {
  const clean = { ...base, wire: wire({}), sizes: () => [20_000, 20_000] as [number, number] };
  test('plaintext on the wire: rule 1', () => {
    const v = violationsOf({ ...clean, name: 'tamper-plaintext', tamperWire: (p, _d, source) => (source !== null && source.length > 100 ? source : p) });
    expect(v).toMatch(/rule 1: \d+ 16-byte runs of plaintext/);
    expect(v).toMatch(/rule 1: .* carries no option/);
  });
  test('a second ciphertext at one stream position: rule 2', () => {
    const seen = new Set<string>();
    const tamperWire = (p: Uint8Array, d: string): Uint8Array =>
      reemit(p, (t) => {
        const key = `${d}:${t.seq}`;
        if (t.payload.length === 0 || !seen.has(key)) {
          seen.add(key);
          return {};
        }
        const payload = t.payload.slice();
        payload[0] = (payload[0] as number) ^ 1;
        return { payload };
      });
    const v = violationsOf({ ...clean, name: 'tamper-reuse', wire: wire({ loss: 0.1 }), tamperWire });
    expect(v).toMatch(/rule 2: .* carried ciphertext/);
  });
  test('a rewritten sequence number: rule 3', () => {
    const v = violationsOf({ ...clean, name: 'tamper-seq', tamperWire: (p) => reemit(p, (t) => (t.payload.length > 0 ? { seq: (t.seq + 1) >>> 0 } : {})) });
    expect(v).toMatch(/rule 3: .* seq\/ack/);
  });
  test('a segment grown past the MTU: rule 4', () => {
    const grow = (t: { payload: Uint8Array }) => (t.payload.length > 1000 ? { payload: new Uint8Array(t.payload.length + 100) } : {});
    const v = violationsOf({ ...clean, name: 'tamper-mtu', tamperWire: (p) => reemit(p, grow) });
    expect(v).toMatch(/rule 4: .* > MTU/);
  });
});

describe('engine bugs found by the simulation (test.failing: each starts passing once fixed)', () => {
  const quiet = { ...base, wire: wire({}), sizes: () => [5_000, 5_000] as [number, number] };
  // BUG (client-agent/engine.ts, AgentEngine.inbound): once the agent is keyed and before the
  // SYN-ACK, `if (!cipher.serverIsnKnown && tcp.flags & (SYN | RST)) cipher.setServerIsn(tcp.seq)`
  // runs BEFORE the segment is authenticated. One forged RST (right 4-tuple, any seq, no tag)
  // fixes the server ISN to the attacker's seq; unprotect then fails ('auth-failed') but the ISN
  // stays, so every genuine SYN-ACK is placed at a wrong stream offset and fails authentication
  // too: the connection never opens. Fix: adopt the ISN only from a segment that authenticates.
  // Reproduce: npx jest test/sim -t 'forged RST toward the agent after keying'
  test.failing('a forged RST toward the agent after keying, before the SYN-ACK, does not break the flow', () => {
    const report = runSim({ ...quiet, name: 'forge-before-synack', forge: 'before-synack' }, 1);
    expect(report.violations).toEqual([]);
  });
  // BUG (client-agent/engine.ts, AgentEngine.inboundUnkeyed): before keying, any RST on the flow's
  // 4-tuple is passed to the client and the flow discarded, without checking that its ACK
  // acknowledges the SYN (RFC 9293 3.10.7.3: the client's TCP ignores such a RST). A blind forged
  // RST (ack = ISN + 1 + 2^31) while the SYN is in flight: the client ignores it, but the agent
  // has forgotten the flow, rejects the gateway's HELLO (unknown connection), the gateway refuses
  // and originates a RST onto the wire, and its tombstone absorbs the resent SYNs: the connection
  // opens only after refusedHoldMs (~6 s here). Fix: accept an unauthenticated RST in syn-sent
  // only when its ACK is the client ISN + 1.
  // Reproduce: npx jest test/sim -t 'blind RST toward the agent before keying'
  test.failing('a blind RST toward the agent before keying (ACK not acknowledging the SYN) is ignored', () => {
    const report = runSim({ ...quiet, name: 'forge-before-keying', forge: 'before-keying' }, 1);
    expect(report.violations).toEqual([]);
  });
});
