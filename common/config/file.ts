// Reading a JSON config file: the only fs part of config loading. Errors are ConfigErrors that
// name the file, so every daemon reports a missing or broken file the same way.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ParseDaemonConfig, ReadKey } from './daemon';
import { ConfigError } from './walker';

export interface ConfigDocument {
  json: unknown;
  /** `config FILE`, for ConfigError. */
  where: string;
  /** The file's directory: relative paths in the config resolve against it. */
  baseDir: string;
}

export function readConfigJson(file: string): ConfigDocument {
  const where = `config ${file}`;
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ConfigError(where, [code === 'ENOENT' ? 'no such file' : (e as Error).message]);
  }
  try {
    return { json: JSON.parse(text), where, baseDir: path.dirname(path.resolve(file)) };
  } catch (e) {
    throw new ConfigError(where, [`not valid JSON: ${(e as Error).message}`]);
  }
}

/** Reads and validates a daemon config file, reading its key files with `readKey`. */
export function loadDaemonConfig<C>(file: string, parse: ParseDaemonConfig<C>, readKey: ReadKey, env: NodeJS.ProcessEnv): C {
  const doc = readConfigJson(file);
  return parse(doc.json, doc.baseDir, readKey, { where: doc.where, env });
}
