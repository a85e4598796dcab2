// Smoke test of `ciphergate bench engine`: a very short run, checked for shape and sanity only.
// No figure is compared to a target here: timing on a shared test machine proves nothing.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { command } from '../../cli/commands/bench';
import { UsageError } from '../../cli/command';
import type { EngineBenchResult } from '../../bench/engine';

describe('ciphergate bench engine', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'cg-bench-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('runs every case, prints the JSON and writes dated and latest files', async () => {
    const printed: string[] = [];
    const log = jest.spyOn(console, 'log').mockImplementation((s: unknown) => void printed.push(String(s)));
    try {
      expect(await command.run(['engine', '--json', '--seconds', '0.05', '--out-dir', dir])).toBe(0);
    } finally {
      log.mockRestore();
    }
    const result = JSON.parse(printed.join('\n')) as EngineBenchResult;
    expect(result).toMatchObject({ bench: 'engine', node: process.version, targets: expect.any(Object) });
    expect(typeof result.cpu).toBe('string');
    expect(Number.isNaN(Date.parse(result.date))).toBe(false);
    const names = result.cases.map((c) => `${c.name}/${c.backend}/${c.payloadBytes}`).sort();
    expect(names).toEqual(
      ['memcpy/none', 'pass-through/none', 'protected-c2s/node', 'protected-s2c/node', 'protected-c2s/noble', 'protected-s2c/noble']
        .flatMap((n) => [`${n}/64`, `${n}/1460`])
        .sort(),
    );
    for (const c of result.cases) {
      for (const k of ['packets', 'seconds', 'packetsPerSecond', 'gbitPerSecond', 'nsPerPacket', 'cpuShare'] as const) {
        expect(c[k]).toBeGreaterThan(0);
        expect(Number.isFinite(c[k])).toBe(true);
      }
    }
    expect(typeof result.meets.passThrough).toBe('boolean');
    expect(Object.keys(result.meets.protected).sort()).toEqual(['noble', 'node']);
    const files = readdirSync(dir).sort();
    expect(files).toHaveLength(2);
    expect(files).toContain('engine-latest.json');
    expect(files.find((f) => f !== 'engine-latest.json')).toMatch(/^engine-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ\.json$/);
    expect(JSON.parse(readFileSync(join(dir, 'engine-latest.json'), 'utf8'))).toEqual(result);
  });

  it('runs one backend when asked, and names a bad flag value', async () => {
    const log = jest.spyOn(console, 'log').mockImplementation(() => undefined);
    try {
      expect(await command.run(['engine', '--seconds', '0.01', '--backend', 'noble', '--out-dir', dir])).toBe(0);
      const latest = JSON.parse(readFileSync(join(dir, 'engine-latest.json'), 'utf8')) as EngineBenchResult;
      expect(new Set(latest.cases.filter((c) => c.name.startsWith('protected')).map((c) => c.backend))).toEqual(new Set(['noble']));
      expect(String(log.mock.calls[0]?.[0])).toContain('protected-c2s');
    } finally {
      log.mockRestore();
    }
    await expect(command.run(['engine', '--backend', 'openssl'])).rejects.toThrow(new UsageError("--backend: 'openssl' is not node, noble or all"));
    await expect(command.run(['engine', '--seconds', '0'])).rejects.toThrow(/--seconds/);
    await expect(command.run(['nope'])).rejects.toThrow(/unknown bench 'nope'/);
  });
});
