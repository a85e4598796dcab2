import type { Command } from './command';

// One line per subcommand, kept in alphabetical order. Loaded lazily so that `--help` stays fast
// and a command's dependencies load only when it runs.
/* eslint-disable @typescript-eslint/no-require-imports */
export const commands: Record<string, () => Command> = {
  agent: () => require('./commands/agent').command,
  bench: () => require('./commands/bench').command,
  demo: () => require('./commands/demo').command,
  gateway: () => require('./commands/gateway').command,
  kdc: () => require('./commands/kdc').command,
  'kdc-admin': () => require('./commands/kdc-admin').command,
  'kdc-client': () => require('./commands/kdc-client').command,
  lab: () => require('./commands/lab').command,
  replay: () => require('./commands/replay').command,
  status: () => require('./commands/status').command,
};
