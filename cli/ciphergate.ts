#!/usr/bin/env node
import { commands } from './commands';
import { UsageError } from './command';

function topHelp(): string {
  const lines = Object.keys(commands)
    .sort()
    .map((name) => `  ${name.padEnd(14)} ${commands[name]!().summary}`);
  return ['usage: ciphergate <command> [options]', '', 'commands:', ...lines, '', 'Run `ciphergate <command> --help` for the options of one command.'].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(topHelp());
    return name === undefined ? 2 : 0;
  }
  const load = commands[name];
  if (!load) {
    console.error(`ciphergate: unknown command '${name}'\n\n${topHelp()}`);
    return 2;
  }
  const command = load();
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(command.usage);
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`ciphergate ${name}: ${e.message}\n\n${command.usage}`);
      return 2;
    }
    console.error(`ciphergate ${name}: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      console.error(e);
      process.exitCode = 1;
    },
  );
}
