// `ciphergate demo`, the main job: the whole system up in the lab, an encrypted session with real
// programs, a slice of the wire capture and the status explained, then tear-down. About 20 s.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { labByteStream } from './http-server';
import { CiphergateLab, LAB_PORTS, cliPath } from './topology';
import { plaintextRunsInCapture } from './wire-check';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function tshark(file: string, filter: string, fields: string[], count: number): string[] {
  // -c would count packets read, not shown: take the first `count` matches ourselves.
  const out = execFileSync('tshark', ['-r', file, '-Y', filter, '-T', 'fields', '-E', 'separator=|', ...fields.flatMap((f) => ['-e', f])], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 256 * 1024 * 1024 });
  return out.split('\n').filter((l) => l.trim() !== '').slice(0, count);
}

const ascii = (hex: string, n: number): string =>
  Buffer.from(hex.replace(/:/g, ''), 'hex').subarray(0, n).toString('latin1').replace(/[^\x20-\x7e]/g, '.');

export async function runLiveDemo(say: (line?: string) => void, keepDir?: string): Promise<boolean> {
  const started = Date.now();
  const dir = keepDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'ciphergate-demo-'));
  const t = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;
  say('ciphergate demo: transparent TCP encryption, live, with programs that know nothing about it.');
  say();
  say(`[${t()}] 1. Building the lab: network namespaces for a client host, a gateway (router mode), a server`);
  say('   host and a KDC host with Redis; offloads off; the real daemons (ciphergate kdc, gateway, agent).');
  const lab = await CiphergateLab.up({ mode: 'router', dir, capture: false, gatewayTimers: { lingerMs: 1000 }, agentTimers: { lingerMs: 1000 } });
  let ok = true;
  try {
    say(`   client ${lab.client.v4} --- gateway --- server ${lab.server.v4}; KDC ${lab.kdcAddr}. Protected: ports 80, 6379, 5201.`);
    say(`   namespaces (ip netns exec NAME ...): ${lab.netns.state().namespaces.join(', ')}`);
    const files = await lab.startCaptures('demo');
    say();
    say(`[${t()}] 2. An encrypted session with real programs on the client:`);
    const size = 1_000_000;
    const seed = 'demo';
    const curl = await lab.client$('sh', ['-c', `curl -sS -m 20 http://${lab.server.v4}/bytes/${size}?seed=${seed} | sha256sum`], { allowFailure: true });
    const want = createHash('sha256').update(labByteStream(seed)(size)).digest('hex');
    const got = curl.stdout.split(' ')[0];
    say(`   $ curl http://${lab.server.v4}/bytes/${size} | sha256sum`);
    say(`     ${got}  ${got === want ? '(matches what the server sent)' : `MISMATCH, expected ${want}`}`);
    ok &&= got === want;
    const rc = await lab.client$('sh', ['-c', `redis-cli -h ${lab.server.v4} set greeting 'hello through ciphergate' && redis-cli -h ${lab.server.v4} get greeting`], { allowFailure: true });
    say(`   $ redis-cli -h ${lab.server.v4} set greeting ...; redis-cli get greeting`);
    for (const line of rc.stdout.trim().split('\n')) say(`     ${line}`);
    ok &&= rc.stdout.includes('hello through ciphergate');
    // A slow download keeps one flow open while we look at the status.
    const slow = lab.client$('curl', ['-sS', '-o', '/dev/null', '--limit-rate', '100k', '-m', '20', `http://${lab.server.v4}/bytes/400000?seed=slow`], { allowFailure: true });
    await sleep(1500);
    say();
    say(`[${t()}] 3. The status while a download is in progress (ciphergate status, like wg show):`);
    const status = execFileSync(process.execPath, [cliPath(), 'status', '--socket', path.join(dir, 'gateway.sock'), '--socket', path.join(dir, 'agent.sock')], { encoding: 'utf8' });
    for (const line of status.trimEnd().split('\n')) say(`   ${line}`);
    say('   Each flow has its own session key from the KDC; "keyed" means keys are held for it right now.');
    await slow;
    await lab.stopCaptures();
    say();
    say(`[${t()}] 4. A slice of the wire capture (tcpdump on the client's link), read by tshark:`);
    const syn = tshark(files.wire, 'tcp.port == 80 && tcp.flags.syn == 1', ['ip.src', 'ip.dst', 'tcp.flags.str', 'tcp.options'], 2);
    for (const line of syn) {
      const [src, dst, flags, opts] = line.split('|');
      const option = /fd0e4347[0-9a-f]{20}|fd104347[0-9a-f]{24}/.exec((opts ?? '').replace(/:/g, ''));
      say(`   ${src} -> ${dst} ${flags}  ciphergate option: ${option ? option[0] : 'none'}`);
      ok &&= option !== null;
    }
    ok &&= syn.length === 2;
    say('   The SYN carries the encryption request (kind 253, ExID 0x4347 "CG", version, suites, connection id);');
    say('   the SYN-ACK carries the gateway\'s mark (a 12-byte tag). Then the first data each way:');
    const wireData = tshark(files.wire, 'tcp.port == 80 && tcp.len > 0', ['tcp.srcport', 'tcp.len', 'tcp.payload'], 2);
    const serverData = tshark(files.server, 'tcp.port == 80 && tcp.len > 0', ['tcp.srcport', 'tcp.len', 'tcp.payload'], 2);
    for (let i = 0; i < Math.min(wireData.length, serverData.length); i++) {
      const [port, len, wirePayload] = (wireData[i] as string).split('|');
      const [, , plainPayload] = (serverData[i] as string).split('|');
      say(`   ${port === '80' ? 'server -> client' : 'client -> server'}, ${len} bytes`);
      say(`     server side (plaintext): ${ascii(plainPayload ?? '', 48)}`);
      say(`     on the wire:             ${ascii(wirePayload ?? '', 48)}`);
    }
    const plaintext = labByteStream(seed)(size);
    const runs = plaintextRunsInCapture(files.wire, plaintext, LAB_PORTS.http);
    const serverRuns = plaintextRunsInCapture(files.server, plaintext.subarray(0, 100_000), LAB_PORTS.http);
    say(`   16-byte runs of the 1 MB download found on the wire: ${runs}; on the server side: ${serverRuns} (of the first 100 kB)`);
    // The server side must show the plaintext, or finding none on the wire would prove nothing.
    ok &&= runs === 0 && serverRuns > 0;
    say();
    await sleep(1500);
    const [g, a] = [await lab.status('gateway'), await lab.status('agent')];
    say(`[${t()}] 5. After the flows ended (FINs, then a short linger): keys held by the gateway ${g.keyedFlows}, by the agent ${a.keyedFlows};`);
    say(`   keys zeroed so far: gateway ${g.counters['keys-discarded'] ?? 0}, agent ${a.counters['keys-discarded'] ?? 0}.`);
    ok &&= g.keyedFlows === 0 && a.keyedFlows === 0;
    const plain = await lab.client$('curl', ['-sS', '-m', '5', `http://${lab.server.v4}:${LAB_PORTS.plainHttp}/`], { allowFailure: true });
    say(`   Port ${LAB_PORTS.plainHttp} is not protected: "${plain.stdout.trim()}" went in plaintext, never through the gateway's queue.`);
    say();
    say(`Captures and logs: ${dir} (wire-demo.pcap, server-demo.pcap, kdc-demo.pcap, *.log)`);
  } finally {
    say(`[${t()}] 6. Tearing down the lab.`);
    await lab.down();
  }
  say(ok ? `Result: OK (${t()})` : `Result: FAILED (${t()})`);
  return ok;
}
