import { DEFAULT_CONFIG_PATH, loadKdcConfig } from '../../kdc/config';
import { jsonLog, startKdc } from '../../kdc/server';
import { parseArgs } from '../args';
import { type Command, UsageError } from '../command';

const usage = `usage: ciphergate kdc [--config FILE] [--max-connections N] [--idle-timeout MS] [--log-level info|warn|error]

Serves the KDC protocol (ISSUE_REQUEST -> tickets) over TCP, with /metrics, /healthz and
/readyz on a separate HTTP port. Several KDC processes may share one Redis store.

--config FILE        KDC config (JSON; default ${DEFAULT_CONFIG_PATH}). See docs/OPERATIONS.md, "KDC".
--max-connections N  gateway connections held at once; more are closed at once (default 1024).
--idle-timeout MS    close a gateway connection idle this long (default 60000).
--log-level L        least severe log level written (default info).

Logs are JSON lines on stdout. SIGTERM or SIGINT: stop accepting, answer the requests in
flight, exit 0. Exit 1 when the config, master key or store is unusable (the message says why).`;

function intFlag(value: string | undefined, flag: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max) throw new UsageError(`--${flag}: '${value}' is not an integer in ${min}..${max}`);
  return n;
}

export const command: Command = {
  name: 'kdc',
  summary: 'run the key distribution center',
  usage,
  async run(argv) {
    const args = parseArgs(argv, { values: ['config', 'max-connections', 'idle-timeout', 'log-level'] });
    if (args.positionals.length > 0) throw new UsageError(`unexpected argument '${args.positionals[0]}'`);
    const level = args.values.get('log-level') ?? 'info';
    if (level !== 'info' && level !== 'warn' && level !== 'error') throw new UsageError(`--log-level: '${level}' is not info, warn or error`);
    const maxConnections = intFlag(args.values.get('max-connections'), 'max-connections', 1, 1_000_000);
    const idleTimeoutMs = intFlag(args.values.get('idle-timeout'), 'idle-timeout', 100, 86_400_000);
    const config = loadKdcConfig(args.values.get('config') ?? DEFAULT_CONFIG_PATH);
    const log = jsonLog(process.stdout, level);
    const kdc = await startKdc(config, {
      log,
      ...(maxConnections !== undefined ? { maxConnections } : {}),
      ...(idleTimeoutMs !== undefined ? { idleTimeoutMs } : {}),
    });
    await new Promise<void>((resolve) => {
      const onSignal = (signal: NodeJS.Signals) => {
        process.off('SIGTERM', onSignal);
        process.off('SIGINT', onSignal);
        log('info', 'kdc-stopping', { signal, inFlight: kdc.service.working });
        kdc.drain().then(resolve, (e: unknown) => {
          log('error', 'kdc-stop-failed', { error: e instanceof Error ? e.message : String(e) });
          resolve();
        });
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
    });
    // Everything is closed; if a library still holds a handle, do not hang the service manager.
    setTimeout(() => process.exit(0), 2000).unref();
    return 0;
  },
};
