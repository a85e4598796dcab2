import { DEFAULT_AGENT_CONFIG_PATH, loadAgentConfig } from '../../client-agent/config';
import { AgentDaemon, agentClosedSteering } from '../../client-agent/daemon';
import { runAgentPrimary, runAgentWorker } from '../../client-agent/workers';
import { jsonLogger, runUntilSignalled } from '../../runtime/daemon-kit';
import { installClosedRules } from '../../runtime/steering';
import { workerIndex } from '../../runtime/worker-pool';
import { parseDaemonArgs } from '../args';
import type { Command } from '../command';

const usage = `usage: ciphergate agent [--config FILE] [--check | --closed-rules]

Runs the client agent: it marks SYNs to protected destinations with the encryption request,
takes the session key a gateway delivers (port 7390 by default), and encrypts client-to-server
and decrypts server-to-client payloads. NFQUEUE in OUTPUT and INPUT, with steering rules the
agent installs itself.

--config FILE   agent config (JSON; default ${DEFAULT_AGENT_CONFIG_PATH}); see docs/OPERATIONS.md
--check         validate the config and run the start-up checks, then exit
--closed-rules  install the rules a stopped agent leaves (connections to require destinations
                reset at once) and exit: for systemd's ExecStopPost=, so an agent that was
                killed fails closed as fast as one that stopped

With "nfqueue": { "workers": N } (N > 1) the agent runs one worker process per NFQUEUE number
(a hash of each flow's ports spreads flows over them) under a primary that owns the rules, the
key-delivery listener (it relays each message to the worker holding the flow), the control
socket and /metrics.

Refuses to start, saying how to fix it, when offloads are on for a data interface, privileges
(CAP_NET_ADMIN, CAP_NET_RAW) are missing, or a kernel feature it needs is absent.
Logs are JSON lines on stdout. SIGHUP reloads destinations and keys without dropping flows.
SIGTERM discards all keys and exits 0. \`ciphergate status\` shows flows and counters.`;

export const command: Command = {
  name: 'agent',
  summary: 'run the client agent (host mode, NFQUEUE)',
  usage,
  async run(argv) {
    const { file, check, closedRules } = parseDaemonArgs(argv, DEFAULT_AGENT_CONFIG_PATH);
    const config = loadAgentConfig(file);
    if (closedRules) {
      const backend = await installClosedRules(agentClosedSteering(config));
      process.stdout.write(`installed the stopped-agent rules (${backend}): connections to require destinations are reset\n`);
      return 0;
    }
    const worker = workerIndex();
    if (worker !== null) {
      await runAgentWorker(file, jsonLogger(process.stdout, config.log.level, { role: 'agent', worker }));
      return new Promise<number>(() => undefined); // the primary ends this process
    }
    const log = jsonLogger(process.stdout, config.log.level, { role: 'agent' });
    const { runStartupChecks, agentNeeds } = await import('../../runtime/checks');
    await runStartupChecks(agentNeeds(config));
    if (check) {
      process.stdout.write(`config ${file} is valid and this host passes the start-up checks\n`);
      return 0;
    }
    if (config.nfqueue.workers > 1) {
      await runAgentPrimary(file, config, log);
      setTimeout(() => process.exit(0), 1000).unref();
      return 0;
    }
    const daemon = await AgentDaemon.start(config, log);
    await runUntilSignalled(log, {
      reload: () => daemon.reload(loadAgentConfig(file)),
      stop: async (signal) => {
        log('info', 'agent-stopping', { signal });
        await daemon.stop();
      },
    });
    setTimeout(() => process.exit(0), 1000).unref();
    return 0;
  },
};
