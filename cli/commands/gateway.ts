import { DEFAULT_GATEWAY_CONFIG_PATH, loadGatewayConfig } from '../../gateway/config';
import { GatewayDaemon, type GatewayDaemonOptions, gatewayClosedSteering } from '../../gateway/daemon';
import { runGatewayPrimary, runGatewayWorker } from '../../gateway/workers';
import { jsonLogger, runUntilSignalled } from '../../runtime/daemon-kit';
import { installClosedRules } from '../../runtime/steering';
import { workerIndex } from '../../runtime/worker-pool';
import { parseDaemonArgs } from '../args';
import type { Command } from '../command';

const usage = `usage: ciphergate gateway [--config FILE] [--check | --closed-rules]

Runs the gateway in front of protected services: it holds each SYN that asks for encryption,
keys the flow with the client's agent and the KDC, then decrypts client-to-server and encrypts
server-to-client payloads. Modes (config "mode"): router and host use NFQUEUE with steering
rules the gateway installs itself; bridge captures on two interfaces with no IP address.

--config FILE   gateway config (JSON; default ${DEFAULT_GATEWAY_CONFIG_PATH}); see docs/OPERATIONS.md
--check         validate the config and run the start-up checks, then exit
--closed-rules  install the rules a stopped gateway leaves (SYNs to require services reset,
                keyed flows dropped) and exit: for systemd's ExecStopPost=, so a gateway that
                was killed fails closed as fast as one that stopped (router and host modes)

With "nfqueue": { "workers": N } (N > 1) the gateway runs one worker process per NFQUEUE number
(a hash of each flow's ports spreads flows over them) under a primary that owns the rules, the control socket
and /metrics.

Refuses to start, saying how to fix it, when offloads are on for a data interface, privileges
(CAP_NET_ADMIN, CAP_NET_RAW) are missing, or a kernel feature it needs is absent.
Logs are JSON lines on stdout. SIGHUP reloads services, keys and KDC endpoints without dropping
established flows. SIGTERM lets keyings in progress finish, discards all keys and exits 0.
\`ciphergate status\` shows flows and counters.`;

export const command: Command = {
  name: 'gateway',
  summary: 'run the gateway datapath (router, host or bridge mode)',
  usage,
  async run(argv) {
    const { file, check, closedRules } = parseDaemonArgs(argv, DEFAULT_GATEWAY_CONFIG_PATH);
    const config = loadGatewayConfig(file);
    if (closedRules) {
      if (config.mode === 'bridge') {
        process.stdout.write('bridge mode installs no rules: a stopped bridge forwards nothing\n');
        return 0;
      }
      const backend = await installClosedRules(gatewayClosedSteering(config));
      process.stdout.write(`installed the stopped-gateway rules (${backend}): SYNs to require services are reset, keyed flows dropped\n`);
      return 0;
    }
    const log = jsonLogger(process.stdout, config.log.level, { role: 'gateway' });
    const bridgeDatapath: GatewayDaemonOptions['bridgeDatapath'] = (c, onError) =>
      // Bridge mode only: cap loads only when it is used.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      new (require('../../runtime/bridge-datapath') as typeof import('../../runtime/bridge-datapath')).BridgeDatapath(c, onError);
    const worker = workerIndex();
    if (worker !== null) {
      await runGatewayWorker(file, jsonLogger(process.stdout, config.log.level, { role: 'gateway', worker }), { bridgeDatapath });
      return new Promise<number>(() => undefined); // the primary ends this process
    }
    const { runStartupChecks, gatewayNeeds } = await import('../../runtime/checks');
    await runStartupChecks(gatewayNeeds(config));
    if (check) {
      process.stdout.write(`config ${file} is valid and this host passes the start-up checks\n`);
      return 0;
    }
    if ((config.nfqueue?.workers ?? 1) > 1) {
      await runGatewayPrimary(file, config, log);
      setTimeout(() => process.exit(0), 1000).unref();
      return 0;
    }
    const daemon = await GatewayDaemon.start(config, { log, bridgeDatapath });
    await runUntilSignalled(log, {
      reload: () => daemon.reload(loadGatewayConfig(file)),
      stop: async (signal) => {
        log('info', 'gateway-stopping', { signal });
        await daemon.stop();
      },
    });
    setTimeout(() => process.exit(0), 1000).unref();
    return 0;
  },
};
