// Smoke test of `ciphergate bench e2e`: one mode (router, which also carries the plain and
// stunnel baselines), one second per measurement, checked for shape and for every figure being a
// positive number. No figure is compared to a target: timing on a shared machine proves nothing.
// Needs root, the lab's tools and a built dist/ (the daemons and the load generator run from it).
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { command } from '../../cli/commands/bench';
import { UsageError } from '../../cli/command';
import { type E2eBenchResult, type PathResult, e2eUnavailable } from '../../bench/e2e';

const unavailable = e2eUnavailable();
const maybe = unavailable === null ? describe : describe.skip;

const positive = (x: unknown): void => {
  expect(typeof x).toBe('number');
  expect(Number.isFinite(x)).toBe(true);
  expect(x as number).toBeGreaterThan(0);
};

function checkPath(p: PathResult): void {
  expect(p.failures).toEqual([]);
  for (const t of [p.throughput.oneStream, p.throughput.twoStreams]) {
    expect(t).not.toBeNull();
    for (const k of ['mbitPerSecond', 'bytes', 'seconds'] as const) positive(t?.[k]);
  }
  for (const s of [p.connectFirstByte, p.newConnections]) {
    expect(s).not.toBeNull();
    for (const k of ['connections', 'p50Ms', 'p90Ms', 'p99Ms', 'maxMs', 'connectP50Ms'] as const) positive(s?.[k]);
    expect(s?.errors).toBe(0);
  }
  positive(p.newConnections?.perSecond);
  if (p.path === 'plain') {
    expect(p.cpu).toBeNull();
  } else {
    positive(p.cpu?.secondsPerGB);
    positive(p.cpu?.secondsPer1000Connections);
  }
}

maybe('ciphergate bench e2e (network namespaces)', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'cg-bench-e2e-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('runs plain, stunnel and ciphergate router, prints the JSON and writes the files', async () => {
    const printed: string[] = [];
    const log = jest.spyOn(console, 'log').mockImplementation((s: unknown) => void printed.push(String(s)));
    try {
      expect(await command.run(['e2e', '--json', '--seconds', '1', '--modes', 'router', '--out-dir', dir])).toBe(0);
    } finally {
      log.mockRestore();
    }
    const result = JSON.parse(printed.join('\n')) as E2eBenchResult;
    expect(result).toMatchObject({ bench: 'e2e', node: process.version, secondsPerMeasurement: 1, targets: expect.any(Object) });
    expect(result.labs).toEqual([expect.objectContaining({ mode: 'router', status: 'ok' })]);
    expect(result.paths.map((p) => `${p.path}/${p.lab}`)).toEqual(['plain/router', 'stunnel/router', 'ciphergate/router']);
    for (const p of result.paths) checkPath(p);
    expect(result.tls).toMatchObject({ protocol: 'TLSv1.3' });
    expect(result.verdicts).toHaveLength(1);
    const v = result.verdicts[0];
    for (const k of ['throughput', 'latencyOverhead', 'newConnections'] as const) expect(typeof v?.[k].met).toBe('boolean');
    positive(v?.throughput.ratio);
    positive(v?.newConnections.ratio);

    const files = readdirSync(dir).sort();
    expect(files).toHaveLength(3);
    expect(files).toEqual(expect.arrayContaining(['e2e-latest.json', 'e2e-latest.md']));
    expect(files.find((f) => !f.includes('latest'))).toMatch(/^e2e-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ\.json$/);
    expect(JSON.parse(readFileSync(join(dir, 'e2e-latest.json'), 'utf8'))).toEqual(result);
    const md = readFileSync(join(dir, 'e2e-latest.md'), 'utf8');
    expect(md).toContain('| path |');
    expect(md).toContain('| ciphergate router |');
  }, 240_000);
});

describe('ciphergate bench e2e flags', () => {
  it('names a bad mode', async () => {
    await expect(command.run(['e2e', '--modes', 'router,tunnel'])).rejects.toThrow(new UsageError("--modes: 'tunnel' is not router, host or bridge"));
  });

  it('names a bad worker count', async () => {
    await expect(command.run(['e2e', '--workers', '1,0'])).rejects.toThrow(new UsageError("--workers: '0' is not a worker count from 1 to 8"));
    await expect(command.run(['e2e', '--workers', '2,x'])).rejects.toThrow(new UsageError("--workers: 'x' is not a worker count from 1 to 8"));
  });
});
