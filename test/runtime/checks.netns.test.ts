// The start-up checks on real interfaces: a network namespace with a veth pair (offloads on as
// Linux creates them), the fix the check prints applied with ethtool, a missing interface, and
// the checks run by a process inside the namespace (as the daemons run them), as root and
// without capabilities.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { transformFileSync } from '@swc/core';
import { NetnsLab, isRoot, missingTools } from '../lib/netns';
import { type CheckNeeds, type CheckProblem, StartupCheckError, evaluateChecks, gatherHostFacts, gatewayNeeds, runStartupChecks } from '../../runtime/checks';

const runnable = isRoot() && missingTools(['ip', 'ethtool', 'setpriv']).length === 0;
const maybe = runnable ? describe : describe.skip;

const offloadsOnly = (ifaces: string[]): CheckNeeds => ({ interfaces: ifaces, capabilities: false, nfqueue: false, conntrack: false, packetFilter: false, packetCapture: false, addons: [] });

maybe('start-up checks in a network namespace', () => {
  const lab = new NetnsLab({ prefix: 'cgchk' });
  let ns: string;
  let dev: string;
  let peerNs: string;
  let script: string;
  beforeAll(async () => {
    ns = await lab.namespace('dp');
    peerNs = await lab.namespace('peer');
    dev = (await lab.veth(ns, peerNs)).devA;
    // The checks (and the one module they import) as plain JS, in the source layout, for a node
    // process started inside the namespace.
    const dir = await lab.tmpdir();
    fs.chmodSync(dir, 0o755);
    for (const rel of ['runtime/checks', 'common/native-addon']) {
      const js = transformFileSync(path.join(__dirname, '..', '..', `${rel}.ts`), { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'commonjs' } }).code;
      fs.mkdirSync(path.join(dir, path.dirname(rel)), { recursive: true, mode: 0o755 });
      fs.writeFileSync(path.join(dir, `${rel}.js`), js, { mode: 0o644 });
    }
    script = path.join(dir, 'runtime', 'checks.js');
  });
  afterAll(() => lab.cleanup());

  /** Runs the checks in a node process inside the namespace; returns its problems. */
  async function checksInside(needs: CheckNeeds, prefix: string[] = []): Promise<CheckProblem[]> {
    const code = `require(${JSON.stringify(script)}).gatherHostFacts(${JSON.stringify(needs)}).then((f) => process.stdout.write(JSON.stringify(require(${JSON.stringify(script)}).evaluateChecks(f, ${JSON.stringify(needs)}))))`;
    const r = await lab.exec(ns, 'env', [`NODE_PATH=${path.join(__dirname, '..', '..', 'node_modules')}`, ...prefix, process.execPath, '-e', code]);
    return JSON.parse(r.stdout) as CheckProblem[];
  }

  test('offloads on a fresh veth are a problem naming the interface and the ethtool command; the command fixes it', async () => {
    await lab.exec(ns, 'ethtool', ['-K', dev, 'gro', 'on']);
    const needs = offloadsOnly([dev]);
    const before = evaluateChecks(await gatherHostFacts(needs, { netns: ns }), needs);
    expect(before).toHaveLength(1);
    expect(before[0]).toMatchObject({ check: 'offloads', fix: `ethtool -K ${dev} gro off lro off tso off gso off` });
    expect(before[0]?.problem).toMatch(new RegExp(`^offloads that re-segment TCP are on for ${dev}: GRO \\(generic-receive-offload\\), TSO \\(tcp-segmentation-offload\\), GSO \\(generic-segmentation-offload\\)`));

    const [cmd, ...args] = (before[0] as CheckProblem).fix.split(' ');
    await lab.exec(ns, cmd as string, args);
    expect(evaluateChecks(await gatherHostFacts(needs, { netns: ns }), needs)).toEqual([]);
  });

  test('a data interface that does not exist (here: one in another namespace)', async () => {
    const peerDev = dev.replace(/a/, 'b');
    const needs = offloadsOnly([dev, 'nosuch0']);
    const problems = evaluateChecks(await gatherHostFacts(needs, { netns: ns }), needs);
    expect(problems.map((p) => [p.check, p.problem])).toEqual([['interface', 'data interface nosuch0 does not exist']]);
    await expect(runStartupChecks(offloadsOnly([peerDev]), { netns: ns })).rejects.toThrow(new RegExp(`data interface ${peerDev} does not exist`));
    await expect(runStartupChecks(offloadsOnly([peerDev]), { netns: ns })).rejects.toBeInstanceOf(StartupCheckError);
  });

  test('router-mode checks, run by a node process inside the namespace as root, pass once offloads are off', async () => {
    const needs = gatewayNeeds({ mode: 'router', dataInterfaces: [dev, 'lo'] });
    const problems = await checksInside(needs);
    // lo has TSO/GSO on; only that may be wrong on this host.
    expect(problems.map((p) => p.check)).toEqual(['offloads']);
    expect(problems[0]?.fix).toBe('ethtool -K lo gro off lro off tso off gso off');
    expect(await checksInside(gatewayNeeds({ mode: 'router', dataInterfaces: [dev] }))).toEqual([]);
    expect(await checksInside(gatewayNeeds({ mode: 'bridge', dataInterfaces: [dev] }))).toEqual([]);
  });

  test('without CAP_NET_ADMIN and CAP_NET_RAW the checks say so, and how to fix it', async () => {
    const needs = gatewayNeeds({ mode: 'router', dataInterfaces: [dev] });
    const problems = await checksInside(needs, ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all']);
    const priv = problems.find((p) => p.check === 'privileges');
    expect(priv?.problem).toBe('missing CAP_NET_ADMIN and CAP_NET_RAW (needed for NFQUEUE, packet-filter rules and raw sockets)');
    expect(priv?.fix).toMatch(/AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW/);
    // Without privileges nft cannot list tables either.
    expect(problems.map((p) => p.check)).toContain('packet-filter');
  });
});
