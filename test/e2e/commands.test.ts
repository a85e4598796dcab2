// The commands a user runs first, as the user runs them (dist/cli/ciphergate.js as a child
// process, as root): `ciphergate demo` (the README's first command), `ciphergate lab up` / `lab
// down` (including the mistakes: up twice in one directory, a second lab beside a running one)
// and `ciphergate lab test`. The rest of the e2e suite drives the same lab through its API;
// these tests hold the commands' own promises: what they print, what they check, what they
// leave behind.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { NETNS_DIR, hasExited, run } from '../../lab/netns';
import { cliPath } from '../../lab/topology';
import { describeE2E, labDir } from './helpers';

const ciphergate = (args: readonly string[], timeoutMs = 120_000) => run(process.execPath, [cliPath(), ...args], { timeoutMs, allowFailure: true });

const namespaces = (): string[] => (fs.existsSync(NETNS_DIR) ? fs.readdirSync(NETNS_DIR).sort() : []);

/** The namespaces a command says it built ("namespaces: a, b, c"); other test files run beside. */
function printedNamespaces(out: string): string[] {
  const names = /namespaces[^:\n]*: (cg-[a-z]+-[0-9a-f]+(?:, cg-[a-z]+-[0-9a-f]+)*)$/m.exec(out)?.[1]?.split(', ') ?? [];
  expect(names.length).toBeGreaterThanOrEqual(3);
  return names;
}

describeE2E('ciphergate demo (the README\'s first command)', () => {
  test('brings the system up, shows an encrypted session, its wire and status, and leaves nothing behind', async () => {
    const r = await ciphergate(['demo'], 110_000);
    const out = r.stdout;
    console.log(`ciphergate demo: exit ${r.code}, ${/Result: \w+ \(([\d.]+s)\)/.exec(out)?.[1] ?? '?'}`);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(out).toContain('Result: OK');
    // Every step, in order.
    const steps = [1, 2, 3, 4, 5, 6].map((n) => out.search(new RegExp(`^\\[[\\d.]+s\\] ${n}\\. `, 'm')));
    expect(steps.every((at) => at >= 0)).toBe(true);
    expect([...steps].sort((a, b) => a - b)).toEqual(steps);
    // The session with real programs.
    expect(out).toMatch(/^ {5}[0-9a-f]{64} {2}\(matches what the server sent\)$/m);
    expect(out).toContain('hello through ciphergate');
    // The status while a flow is open shows it keyed.
    expect(out).toMatch(/flows-keyed [1-9]/);
    // The wire slice: the SYN's request option and the SYN-ACK's mark, then ciphertext where the
    // server side shows the plaintext HTTP.
    expect(out).toMatch(/-> \S+ \S*S\S*  ciphergate option: fd0e4347[0-9a-f]{20}$/m);
    expect(out).toMatch(/ciphergate option: fd104347[0-9a-f]{24}$/m);
    expect(out).toMatch(/server side \(plaintext\): HTTP\/1\.1 200 OK/);
    const wireLines = [...out.matchAll(/^ {5}on the wire: +(.*)$/gm)].map((m) => m[1] as string);
    expect(wireLines.length).toBeGreaterThanOrEqual(2);
    for (const line of wireLines) expect(line).not.toMatch(/HTTP|GET \//);
    // No plaintext run on the wire, and the same count on the server side is not vacuous.
    const runs = /found on the wire: (\d+); on the server side: (\d+)/.exec(out);
    expect(runs).not.toBeNull();
    expect(Number(runs![1])).toBe(0);
    expect(Number(runs![2])).toBeGreaterThan(1000);
    expect(out).toMatch(/keys held by the gateway 0, by the agent 0;/);
    // Torn down: no namespace and no process of the demo's lab is left.
    const built = printedNamespaces(out);
    expect(namespaces().filter((n) => built.includes(n))).toEqual([]);
    const dir = /^Captures and logs: (\S+)/m.exec(out)?.[1];
    expect(dir).toBeDefined();
    const leftovers = await run('pgrep', ['-f', dir!], { timeoutMs: 10_000, allowFailure: true });
    expect(leftovers.stdout).toBe('');
  }, 150_000);
});

// `lab up` names its namespaces cg-<role>-lab: a developer's own lab would collide, so skip then.
const labNamespaces = () => namespaces().filter((n) => /^cg-[a-z]+-lab$/.test(n));
const labIsUp = () => (labNamespaces().length > 0 ? `a lab is up on this host (${labNamespaces().join(', ')}); run ciphergate lab down` : null);

describeE2E(
  'ciphergate lab up / lab down',
  () => {
    const dir = labDir('lab-cli');
    const otherDir = labDir('lab-cli-2');
    const stateFile = path.join(dir, 'lab-state.json');

    afterAll(async () => {
      if (fs.existsSync(stateFile)) await ciphergate(['lab', 'down', '--dir', dir]);
    }, 60_000);

    test('up leaves a working lab; a second up is refused with a message that names the fix; down removes it all', async () => {
      const up = await ciphergate(['lab', 'up', '--mode', 'host', '--dir', dir]);
      expect(up.stderr).toBe('');
      expect(up.code).toBe(0);
      expect(up.stdout).toContain('lab up (host mode). Namespaces: cg-client-lab, cg-server-lab, cg-kdc-lab');
      const server = /curl http:\/\/([\d.]+)\//.exec(up.stdout)?.[1];
      expect(server).toBeDefined();
      const state = JSON.parse(fs.readFileSync(stateFile, 'utf8')) as { namespaces: string[]; pids: number[] };
      expect(state.namespaces).toEqual(['cg-client-lab', 'cg-server-lab', 'cg-kdc-lab']);
      expect(state.pids.length).toBeGreaterThan(0);

      // What the printed "try:" lines promise: curl to the protected port is keyed and answered.
      const curl = () => run('ip', ['netns', 'exec', 'cg-client-lab', 'curl', '-sS', '-m', '10', '-o', '/dev/null', '-w', '%{http_code}', `http://${server}/`], { timeoutMs: 20_000, allowFailure: true });
      expect((await curl()).stdout).toBe('200');
      const status = await ciphergate(['status', '--json', '--socket', path.join(dir, 'gateway.sock'), '--socket', path.join(dir, 'agent.sock')]);
      expect(status.code).toBe(0);
      const [gateway, agent] = JSON.parse(status.stdout) as Array<{ counters: Record<string, number> }>;
      expect(gateway!.counters['flows-established']).toBeGreaterThanOrEqual(1);
      expect(gateway!.counters['segments-unprotected']).toBeGreaterThanOrEqual(1);
      expect(agent!.counters['flows-keyed']).toBeGreaterThanOrEqual(1);
      expect(agent!.counters['syn-marked']).toBeGreaterThanOrEqual(1);

      // Up again in the same directory: an error, not a usage message, and the lab untouched.
      const again = await ciphergate(['lab', 'up', '--mode', 'host', '--dir', dir]);
      expect(again.code).toBe(1);
      expect(again.stderr).toContain(`a lab is already up (${stateFile}); run: ciphergate lab down --dir ${dir}`);
      expect(again.stderr).not.toContain('usage:');

      // A second lab from another directory would take the same namespace names.
      const beside = await ciphergate(['lab', 'up', '--mode', 'router', '--dir', otherDir]);
      expect(beside.code).toBe(1);
      expect(beside.stderr).toContain('network namespace cg-client-lab already exists: another lab is up');
      expect(fs.existsSync(path.join(otherDir, 'lab-state.json'))).toBe(false);
      expect(state.pids.filter(hasExited)).toEqual([]);
      expect((await curl()).stdout).toBe('200');

      const down = await ciphergate(['lab', 'down', '--dir', dir]);
      expect(down.code).toBe(0);
      expect(down.stdout).toContain(`lab down: stopped ${state.pids.length} processes, removed cg-client-lab, cg-server-lab, cg-kdc-lab`);
      expect(labNamespaces()).toEqual([]);
      expect(state.pids.every(hasExited)).toBe(true);
      expect(fs.existsSync(stateFile)).toBe(false);

      const downAgain = await ciphergate(['lab', 'down', '--dir', dir]);
      expect(downAgain.code).toBe(0);
      expect(downAgain.stderr).toContain(`no lab state in ${dir} (nothing to do)`);
    }, 180_000);
  },
  { check: labIsUp },
);

describeE2E('ciphergate lab test', () => {
  test('checks a throw-away host-mode lab end to end and says so', async () => {
    const r = await ciphergate(['lab', 'test', '--mode', 'host', '--dir', labDir('lab-test')], 170_000);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('lab test: all checks passed');
    expect(r.stdout).not.toMatch(/FAIL/);
    // The checks it names, each passed (a self-test that skipped its checks would still "pass").
    for (const check of ['curl over IPv4', 'curl over IPv6', 'sha256 matches', 'redis-cli SET/GET', 'iperf3', 'plaintext service', 'no 16-byte run of the plaintext', 'no keys held', 'agent stopped']) {
      expect(r.stdout).toMatch(new RegExp(`^  PASS  .*${check}`, 'm'));
    }
    const built = printedNamespaces(r.stdout);
    expect(namespaces().filter((n) => built.includes(n))).toEqual([]);
  }, 180_000);
});
