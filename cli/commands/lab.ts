import * as fs from 'node:fs';
import * as path from 'node:path';
import { NetnsLab, type LabState } from '../../lab/netns';
import { CiphergateLab, LAB_PORTS, type LabMode } from '../../lab/topology';
import { runLabSelfTest } from '../../lab/self-test';
import { parseArgs } from '../args';
import { type Command, UsageError } from '../command';

const DEFAULT_DIR = '/run/ciphergate-lab';

const usage = `usage: ciphergate lab up [--mode router|host|bridge] [--dir DIR]
       ciphergate lab down [--dir DIR]
       ciphergate lab test [--mode router|host|bridge|all] [--dir DIR]

Builds a lab of network namespaces on this host: a client host running the agent, the gateway
(router mode: a router between client and server; host mode: on the server host; bridge mode:
a bump in the wire with two interfaces and no IP), a server host with a web server (port 80,
protected; 8080, not), redis-server (6379) and iperf3 (5201), and a KDC host with Redis.
Offloads are off on every interface and tcpdump records every link. Needs root.

up     builds the lab and leaves it running (namespaces cg-client-lab, cg-gateway-lab, cg-server-lab,
       cg-kdc-lab); it prints how to use it. Configs, keys, logs and captures are in DIR
       (default ${DEFAULT_DIR}).
down   stops every process of the lab and removes its namespaces.
test   builds a throw-away lab, checks it end to end with real programs (curl, redis-cli,
       iperf3), that the wire carries no plaintext and that keys are gone after the flows end,
       then tears it down. Exit 0 when every check passes.`;

const stateFile = (dir: string) => path.join(dir, 'lab-state.json');

function mode(value: string | undefined, allowAll: boolean): LabMode | 'all' {
  const m = value ?? 'router';
  if (m === 'router' || m === 'host' || m === 'bridge' || (allowAll && m === 'all')) return m;
  throw new UsageError(`--mode: '${m}' is not router, host or bridge${allowAll ? ' or all' : ''}`);
}

export const command: Command = {
  name: 'lab',
  summary: 'build, test or remove the namespace lab (client, gateway, server, KDC)',
  usage,
  async run(argv) {
    const args = parseArgs(argv, { values: ['mode', 'dir'] });
    const [verb, ...rest] = args.positionals;
    if (rest.length > 0) throw new UsageError(`unexpected argument '${rest[0]}'`);
    const dir = args.values.get('dir') ?? DEFAULT_DIR;
    if (verb === 'up') {
      if (fs.existsSync(stateFile(dir))) throw new Error(`a lab is already up (${stateFile(dir)}); run: ciphergate lab down --dir ${dir}`);
      const m = mode(args.values.get('mode'), false) as LabMode;
      const lab = await CiphergateLab.up({ mode: m, dir, persistent: { id: 'lab' }, capture: true });
      const state: LabState & { mode: LabMode } = { ...lab.netns.state(), mode: m };
      fs.writeFileSync(stateFile(dir), JSON.stringify(state, null, 2) + '\n');
      const c = lab.client.ns;
      process.stdout.write(
        [
          `lab up (${m} mode). Namespaces: ${state.namespaces.join(', ')}`,
          `try:`,
          `  ip netns exec ${c} curl http://${lab.server.v4}/                 # encrypted (port ${LAB_PORTS.http} is protected)`,
          `  ip netns exec ${c} curl http://[${lab.server.v6}]:${LAB_PORTS.plainHttp}/     # plaintext, untouched (${LAB_PORTS.plainHttp} is not)`,
          `  ip netns exec ${c} redis-cli -h ${lab.server.v4} ping`,
          `  ip netns exec ${c} iperf3 -c ${lab.server.v4} -t 5`,
          `  ciphergate status --socket ${dir}/gateway.sock --socket ${dir}/agent.sock`,
          `captures (tcpdump, running): ${dir}/wire-run.pcap (encrypted wire), ${dir}/server-run.pcap, ${dir}/kdc-run.pcap`,
          `logs: ${dir}/*.log      tear down: ciphergate lab down --dir ${dir}`,
          '',
        ].join('\n'),
      );
      return 0;
    }
    if (verb === 'down') {
      if (!fs.existsSync(stateFile(dir))) {
        process.stderr.write(`ciphergate lab down: no lab state in ${dir} (nothing to do)\n`);
        return 0;
      }
      const state = JSON.parse(fs.readFileSync(stateFile(dir), 'utf8')) as LabState;
      await NetnsLab.teardown(state);
      fs.rmSync(stateFile(dir));
      process.stdout.write(`lab down: stopped ${state.pids.length} processes, removed ${state.namespaces.join(', ')}\n`);
      return 0;
    }
    if (verb === 'test') {
      const m = mode(args.values.get('mode'), true);
      const modes: LabMode[] = m === 'all' ? ['router', 'host', 'bridge'] : [m];
      let failed = 0;
      for (const each of modes) failed += await runLabSelfTest(each, path.join(dir, `test-${each}`), (line) => process.stdout.write(line + '\n'));
      process.stdout.write(failed === 0 ? 'lab test: all checks passed\n' : `lab test: ${failed} check(s) failed\n`);
      return failed === 0 ? 0 : 1;
    }
    throw new UsageError(verb === undefined ? 'say up, down or test' : `unknown lab command '${verb}' (up, down or test)`);
  },
};
