import { runLiveDemo } from '../../lab/demo';
import { parseArgs } from '../args';
import type { Command } from '../command';
import { offlineUsage, runOfflineDemo } from './demo-offline';

const usage = `usage: ciphergate demo [--dir DIR]
${offlineUsage}

Without --offline (needs root): brings the whole system up in the namespace lab (KDC with Redis,
gateway in router mode, agent, a server with a web server and Redis), runs an encrypted session
with curl and redis-cli, shows and explains a slice of the wire capture and the status, then
tears everything down. About 20 seconds. --dir keeps the captures and logs there.`;

export const command: Command = {
  name: 'demo',
  summary: 'show ciphergate encrypting real TCP sessions end to end (live lab, or --offline replay)',
  usage,
  async run(argv) {
    if (argv.includes('--offline')) return runOfflineDemo(argv);
    const args = parseArgs(argv, { values: ['dir'] });
    return (await runLiveDemo((line = '') => process.stdout.write(line + '\n'), args.values.get('dir'))) ? 0 : 1;
  },
};
