import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { getBackend, isBackendName, defaultBackend } from '../../common/crypto';
import { type RandomSource, seededRandom, systemRandom } from '../../common/crypto/random';
import { parseEndpoint } from '../../common/engine/endpoints';
import { readCapture } from '../../common/pcap';
import { type PacketToWrite, writePcap } from '../../common/pcap/writer';
import { formatWireError } from '../../common/wire/errors';
import { type Endpoint, replayPipeline, replayRole } from '../../pipeline/replay';
import { type ParsedArgs, parseArgs, required } from '../args';
import { type Command, UsageError } from '../command';

const usage = `usage:
  ciphergate replay --pipeline --protect ADDR:PORT[,ADDR:PORT...] --in IN --out-dir DIR [--verify]
  ciphergate replay --role gateway|agent --protect ADDR:PORT[,...] --in IN --out OUT

Runs ciphergate's engines over a capture (pcap or pcapng) on the capture's own clock.

--pipeline   the whole path: client-to-server packets enter at the agent, server-to-client
             packets at the gateway, with an in-process KDC and key delivery. Writes
             DIR/client.pcap (client side of the agent), DIR/wire.pcap (agent <-> gateway) and
             DIR/server.pcap (server side of the gateway).
--role R     one engine over the capture; flows that ask for encryption fail closed (no agent
             or KDC to key with), as they would live.
--protect    protected services (gateway) / destinations (agent): ADDR:PORT, [V6ADDR]:PORT or
             CIDR:PORT, comma-separated.
--verify     (pipeline) also check that each protected stream arrived byte for byte and that
             no 16-byte run of protected plaintext is on the wire; exit 1 if not.
--seed S     deterministic keys and nonces (default: system randomness).
--backend B  crypto backend: node or noble (default: ${defaultBackend.name}).

Prints one JSON summary on stdout: flows, protected flows, verdicts per engine, bytes, counters.`;

function endpoints(text: string): Endpoint[] {
  return text.split(',').map((part) => {
    const e = parseEndpoint(part.trim());
    if (typeof e === 'string') throw new UsageError(`--protect: ${e}`);
    return e;
  });
}

function writeCapture(path: string, linkType: number, packets: PacketToWrite[]): void {
  writeFileSync(path, writePcap(linkType, packets));
}

function options(args: ParsedArgs): { random: RandomSource; backendName: string } {
  const seed = args.values.get('seed');
  const backendName = args.values.get('backend') ?? defaultBackend.name;
  if (!isBackendName(backendName)) throw new UsageError(`--backend: '${backendName}' is not node or noble`);
  return { random: seed === undefined ? systemRandom : seededRandom(seed), backendName };
}

export const command: Command = {
  name: 'replay',
  summary: 'run the agent and gateway engines over a capture file',
  usage,
  async run(argv) {
    const args = parseArgs(argv, { values: ['protect', 'in', 'out', 'out-dir', 'role', 'seed', 'backend'], booleans: ['pipeline', 'verify'] });
    const inPath = required(args, 'in');
    const protect = endpoints(required(args, 'protect'));
    const { random, backendName } = options(args);
    const backend = getBackend(backendName as 'node' | 'noble');
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(inPath);
    } catch (e) {
      throw new Error(`cannot read --in ${inPath}: ${(e as Error).message}`);
    }
    const capture = readCapture(bytes);
    if (!capture.ok) throw new Error(`${inPath} is not a readable capture: ${formatWireError(capture.error)}`);
    const packets = capture.value.packets;
    const linkTypes = new Set(packets.map((p) => p.linkType));
    if (linkTypes.size > 1) throw new Error(`${inPath} mixes link types ${[...linkTypes].join(', ')}; replay writes one link type per file`);
    const linkType = packets[0]?.linkType ?? 1;

    if (args.booleans.has('pipeline')) {
      if (args.values.has('role')) throw new UsageError('--pipeline and --role exclude each other');
      const outDir = required(args, 'out-dir');
      const result = replayPipeline({ packets, protect, backend, random, verify: args.booleans.has('verify') });
      mkdirSync(outDir, { recursive: true });
      writeCapture(join(outDir, 'client.pcap'), linkType, result.client);
      writeCapture(join(outDir, 'wire.pcap'), linkType, result.wire);
      writeCapture(join(outDir, 'server.pcap'), linkType, result.server);
      console.log(JSON.stringify({ input: inPath, format: capture.value.format, backend: backend.name, ...result.summary }));
      return result.summary.verification?.ok === false ? 1 : 0;
    }
    const role = required(args, 'role');
    if (role !== 'gateway' && role !== 'agent') throw new UsageError(`--role: '${role}' is not gateway or agent`);
    const result = replayRole({ packets, role, protect, backend, random });
    writeCapture(required(args, 'out'), linkType, result.output);
    console.log(JSON.stringify({ input: inPath, format: capture.value.format, backend: backend.name, ...result.summary }));
    return 0;
  },
};
