// Loading our optional N-API addons (native/<name>, built by `npm run build:native`). Each one
// has a slower pure-node fallback that gives the same results, so an addon that is missing,
// disabled by its environment switch, or built for another node ABI is null, never an error.
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The nearest directory above this file with the addon in it (source or dist/ layout). */
function addonPath(rel: string): string | null {
  for (let dir = __dirname, i = 0; i < 5; i++, dir = path.dirname(dir)) {
    const p = path.join(dir, rel);
    if (fs.existsSync(p)) return p;
  }
  return null;
}

/** native/<name>/build/Release/<file>.node, or null (absent, `<disableEnv>=0`, or does not load). */
export function loadNativeAddon<T>(name: string, file: string, disableEnv: string): T | null {
  if (process.env[disableEnv] === '0') return null;
  const p = addonPath(path.join('native', name, 'build', 'Release', `${file}.node`));
  if (p === null) return null;
  try {
    const m = { exports: {} as T };
    process.dlopen(m, p);
    return m.exports;
  } catch {
    return null; // built for another node ABI, say: the fallback is correct, only slower
  }
}
