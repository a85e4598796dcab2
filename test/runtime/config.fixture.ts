// Shared by the config tests: key files from a map, and the problems a ConfigError lists.
import type { LoadedKey, ReadKey } from '../../common/config/daemon';
import { ConfigError } from '../../common/config/walker';

/** readKey over a map of absolute paths; a missing one fails as a missing file would. */
export function mapReadKey(keys: Record<string, LoadedKey>): ReadKey {
  return (file) => {
    const k = keys[file];
    if (k === undefined) throw new Error(`key file ${file}: no such file`);
    return k;
  };
}

/** The problems of the ConfigError `f` throws; fails the test when it throws none. */
export function problemsOf(f: () => unknown): string[] {
  try {
    f();
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  throw new Error('expected a ConfigError');
}
