// A subcommand of `ciphergate`. Each lives in cli/commands/<name>.ts and is listed in cli/commands.ts.
export interface Command {
  name: string;
  /** One line for `ciphergate --help`. */
  summary: string;
  /** Full text for `ciphergate <name> --help`. */
  usage: string;
  /** Returns the process exit code. */
  run(argv: string[]): Promise<number>;
}

/** A usage error: printed with the command's usage, exit code 2. */
export class UsageError extends Error {}
