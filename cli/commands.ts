import type { Command } from './command';

// One line per subcommand, kept in alphabetical order. Loaded lazily so that `--help` stays fast
// and a command's dependencies load only when it runs.
export const commands: Record<string, () => Command> = {
  replay: () => require('./commands/replay').command,
};
