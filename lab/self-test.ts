// `ciphergate lab test`: a throw-away lab checked end to end with real programs, one line per
// check. The thorough suite is test/e2e; this is what an operator runs to see it work here.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { labByteStream } from './http-server';
import { CiphergateLab, LAB_PORTS, type LabMode } from './topology';
import { plaintextRunsInCapture } from './wire-check';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Runs the checks in one mode; returns the number that failed. */
export async function runLabSelfTest(mode: LabMode, dir: string, print: (line: string) => void): Promise<number> {
  let failed = 0;
  const check = async (name: string, fn: () => Promise<string>): Promise<void> => {
    const started = Date.now();
    try {
      const detail = await fn();
      print(`  PASS  ${name}${detail ? `: ${detail}` : ''} (${Date.now() - started} ms)`);
    } catch (e) {
      failed++;
      print(`  FAIL  ${name}: ${(e as Error).message}`);
    }
  };
  fs.rmSync(dir, { recursive: true, force: true });
  print(`lab test, ${mode} mode (work dir ${dir})`);
  const lab = await CiphergateLab.up({ mode, dir, gatewayTimers: { lingerMs: 1000 }, agentTimers: { lingerMs: 1000 } });
  print(`  namespaces: ${lab.netns.state().namespaces.join(', ')}`);
  try {
    const srv = (port: number, p: string, v6 = false) => `http://${v6 ? `[${lab.server.v6}]` : lab.server.v4}:${port}${p}`;
    const ok = async (cmd: string, args: string[]) => {
      const r = await lab.client$(cmd, args, { allowFailure: true });
      if (r.code !== 0) throw new Error(`${cmd} exited ${r.code}: ${(r.stderr || r.stdout).trim().slice(0, 300)}`);
      return r.stdout;
    };
    const size = 2_000_000;
    const seed = `selftest-${mode}`;
    const files = await lab.startCaptures('selftest');
    await check('curl over IPv4 (protected port 80)', async () => (await ok('curl', ['-sS', '-m', '5', srv(LAB_PORTS.http, '/')])).trim());
    await check('curl over IPv6 (protected port 80)', async () => (await ok('curl', ['-sS', '-m', '5', srv(LAB_PORTS.http, '/', true)])).trim());
    await check(`download ${size} bytes, sha256 matches`, async () => {
      const got = (await ok('sh', ['-c', `curl -sS -m 30 '${srv(LAB_PORTS.http, `/bytes/${size}?seed=${seed}`)}' | sha256sum`])).split(' ')[0];
      const want = createHash('sha256').update(labByteStream(seed)(size)).digest('hex');
      if (got !== want) throw new Error(`sha256 ${got}, expected ${want}`);
      return want.slice(0, 16);
    });
    await check('redis-cli SET/GET (protected port 6379)', async () => {
      await ok('redis-cli', ['-h', lab.server.v4, 'set', 'ciphergate', 'encrypted']);
      const v = (await ok('redis-cli', ['-h', lab.server.v4, 'get', 'ciphergate'])).trim();
      if (v !== 'encrypted') throw new Error(`GET returned ${v}`);
      return v;
    });
    await check('iperf3 for 2 s (protected port 5201)', async () => {
      const out = JSON.parse(await ok('iperf3', ['-c', lab.server.v4, '-p', String(LAB_PORTS.iperf), '-t', '2', '-J'])) as { end: { sum_received: { bits_per_second: number } } };
      return `${(out.end.sum_received.bits_per_second / 1e6).toFixed(0)} Mbit/s`;
    });
    await check('plaintext service (port 8080) passes untouched', async () => (await ok('curl', ['-sS', '-m', '5', srv(LAB_PORTS.plainHttp, '/')])).trim());
    await lab.stopCaptures();
    const plaintext = labByteStream(seed)(size);
    await check('the wire carries no 16-byte run of the plaintext', async () => {
      const runs = plaintextRunsInCapture(files.wire, plaintext, LAB_PORTS.http);
      if (runs !== 0) throw new Error(`${runs} runs of plaintext on the wire`);
      return path.basename(files.wire);
    });
    if (mode !== 'host') {
      await check('the server side sees the plaintext', async () => {
        const runs = plaintextRunsInCapture(files.server, plaintext, LAB_PORTS.http);
        if (runs < plaintext.length / 2) throw new Error(`only ${runs} plaintext runs on the server side`);
        return `${runs} runs`;
      });
    }
    await check('no keys held once the flows ended (status)', async () => {
      for (let i = 0; i < 40; i++) {
        const [g, a] = [await lab.status('gateway'), await lab.status('agent')];
        if (g.keyedFlows === 0 && a.keyedFlows === 0) return `gateway discarded ${g.counters['keys-discarded'] ?? 0} keys, agent ${a.counters['keys-discarded'] ?? 0}`;
        await sleep(250);
      }
      const [g, a] = [await lab.status('gateway'), await lab.status('agent')];
      throw new Error(`still keyed: gateway ${g.keyedFlows}, agent ${a.keyedFlows}`);
    });
    await check('agent stopped: protected service refused fast, no plaintext', async () => {
      await lab.stop('agent');
      const started = Date.now();
      const r = await lab.client$('curl', ['-sS', '-m', '5', srv(LAB_PORTS.http, '/')], { allowFailure: true });
      const ms = Date.now() - started;
      if (r.code === 0) throw new Error('the request succeeded without the agent');
      if (ms > 2000) throw new Error(`took ${ms} ms to fail`);
      return `curl exit ${r.code} after ${ms} ms`;
    });
  } finally {
    await lab.down();
  }
  return failed;
}
