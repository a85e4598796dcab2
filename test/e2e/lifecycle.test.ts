// Flow and daemon lifecycle (router mode): an idle flow's keys are discarded on both sides after
// idleTimeoutMs, and what the client sends afterwards never crosses in plaintext; a SIGHUP
// reload of the gateway during a 100 MB transfer keeps the transfer byte-exact and puts the new
// config in effect (status shows it, and a newly required service refuses plain SYNs).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { labBytesSha256 } from '../../lab/http-server';
import type { CiphergateLab } from '../../lab/topology';
import {
  anyPayloadHolds,
  counter,
  daemonStatus,
  describeE2E,
  downloadSha256,
  eventually,
  sleep,
  statusCli,
  tcpSegments,
  timedCurl,
  uniqueSeed,
  useLab,
  url,
} from './helpers';

const IDLE_MS = 3000;

describeE2E('lifecycle: idle timeout and SIGHUP reload (router mode)', () => {
  let lab: CiphergateLab;

  const timers = { lingerMs: 1000, idleTimeoutMs: IDLE_MS };
  useLab('lifecycle', { mode: 'router', gatewayTimers: timers, agentTimers: timers }, (l) => {
    lab = l;
  });

  test('an idle flow: keys discarded on both sides after idleTimeoutMs, later data never in plaintext', async () => {
    const marker = uniqueSeed('after-idle');
    // A redis client that talks, stays idle past the timeout, then talks again.
    const script = `
      const s = require('net').connect(6379, ${JSON.stringify(lab.server.v4)});
      s.on('error', (e) => console.log('error ' + e.code));
      s.on('data', (d) => console.log('data ' + JSON.stringify(d.toString())));
      s.on('connect', () => {
        s.write('PING\\r\\n');
        setTimeout(() => s.write('ECHO ${marker}\\r\\n'), ${IDLE_MS + 3500});
        setTimeout(() => { s.destroy(); process.exit(0); }, ${IDLE_MS + 6500});
      });`;
    const [g0, a0] = await statusCli(lab);
    const caps = await lab.startCaptures('idle');
    const client = lab.netns.spawn(lab.client.ns, process.execPath, ['-e', script]);
    try {
      const keyed = await eventually(() => statusCli(lab), (d) => d.every((x) => x.keyedFlows === 1), 3000, 100);
      expect(keyed.map((d) => d.keyedFlows)).toEqual([1, 1]);
      await sleep(IDLE_MS + 1500);
      // Idle past the timeout (and before the client speaks again): no keys anywhere.
      const idle = await statusCli(lab);
      expect(idle.map((d) => d.keyedFlows)).toEqual([0, 0]);
      expect(idle.map((d) => d.flowCount)).toEqual([0, 0]);
      expect(counter(idle[0]!, 'discarded:idle') - counter(g0!, 'discarded:idle')).toBe(1);
      expect(counter(idle[1]!, 'discarded:idle') - counter(a0!, 'discarded:idle')).toBe(1);
      // The queue binding's own counters: the flow's packets came in batches, with no errors.
      for (const [before, after] of [[g0, idle[0]], [a0, idle[1]]] as const) {
        const q0 = before!.queue!;
        const q = after!.queue!;
        expect(q.packets - q0.packets).toBeGreaterThan(2);
        expect(q.batches).toBeLessThanOrEqual(q.packets);
        expect(q.verdicts).toBeGreaterThanOrEqual(q.packets - 64);
        expect(q.errors).toBe(0);
        // The kernel's figures for the same queue: nothing waiting once idle, nothing dropped.
        expect(after!.kernelQueue).toEqual({ waiting: 0, queueFull: 0, socketFull: 0 });
      }
      // The gateway timed the flow's keying (SYN held until cipher sync): one more, a real delay.
      const k0 = g0!.keying!;
      const k = idle[0]!.keying!;
      expect(k.count - k0.count).toBe(1);
      expect(k.sumMs - k0.sumMs).toBeGreaterThan(0);
      expect(k.sumMs - k0.sumMs).toBeLessThan(1500);
      // The same histogram on the gateway's /metrics, scraped in its namespace.
      const scrape = await lab.netns.exec(lab.gatewayNs, 'curl', ['-s', '--max-time', '5', 'http://127.0.0.1:9392/metrics']);
      expect(scrape.stdout).toContain(`ciphergate_gateway_keying_duration_seconds_count ${k.count}`);
      expect(scrape.stdout).toContain('ciphergate_gateway_nfqueue_kernel_drops_total{reason="queue-full"} 0');
      await client.exited;
    } finally {
      await client.stop();
      await lab.stopCaptures();
    }
    expect(client.stdout()).toContain('data "+PONG\\r\\n"');
    // The flow is gone: the client's later request is neither answered nor seen in plaintext.
    expect(client.stdout()).not.toContain(marker);
    expect(anyPayloadHolds(tcpSegments(caps.wire), marker)).toBe(false);
    expect(anyPayloadHolds(tcpSegments(caps.server), marker)).toBe(false);
  }, 60_000);

  test('SIGHUP during a 100 MB download: the transfer stays byte-exact, the new config applies', async () => {
    const file = path.join(lab.dir, 'gateway.json');
    const original = fs.readFileSync(file, 'utf8');
    const config = JSON.parse(original) as { services: Array<{ endpoint: string; mode: string }> };
    const plain = `${lab.server.v4}:8080`;
    const redis = `${lab.server.v4}:6379`;
    // Before: port 8080 is not a service, plain connections pass.
    expect((await timedCurl(lab, url(lab.server.v4, 8080, '/'), ['--fail'])).code).toBe(0);

    const n = 100_000_000;
    const seed = uniqueSeed('hup');
    const download = downloadSha256(lab, url(lab.server.v4, 80, `/bytes/${n}?seed=${seed}`));
    try {
      await eventually(() => daemonStatus(lab, 'gateway'), (s) => s.keyedFlows >= 1, 5000, 50);
      await sleep(1000);
      const next = {
        ...config,
        services: [...config.services.map((s) => (s.endpoint === redis ? { ...s, mode: 'optional' } : s)), { endpoint: plain, mode: 'require' }],
      };
      fs.writeFileSync(file, JSON.stringify(next, null, 2) + '\n');
      lab.signal('gateway', 'SIGHUP');
      const reloaded = await eventually(
        () => daemonStatus(lab, 'gateway'),
        (s) => (s.services ?? []).some((x) => x.endpoint === plain),
        10_000,
        100,
      );
      expect(reloaded.services).toEqual(expect.arrayContaining([{ endpoint: plain, mode: 'require' }, { endpoint: redis, mode: 'optional' }]));
      // In effect: a plain SYN to the newly required service is refused at once.
      const refused = await timedCurl(lab, url(lab.server.v4, 8080, '/'), [], 8);
      expect({ code: refused.code, fast: refused.ms < 2000 }).toEqual({ code: 7, fast: true });
      expect(counter(await daemonStatus(lab, 'gateway'), 'refused:require')).toBeGreaterThan(0);
      // The established flow was not touched: still there, still keyed, when the reload is done.
      const during = await daemonStatus(lab, 'gateway');
      expect(during.flows.some((f) => f.keyed && f.server.endsWith(':80') && f.state === 'established')).toBe(true);
      expect(await download).toBe(labBytesSha256(seed, n));
    } finally {
      await download.catch(() => undefined);
      fs.writeFileSync(file, original);
      lab.signal('gateway', 'SIGHUP');
    }
    await eventually(() => daemonStatus(lab, 'gateway'), (s) => !(s.services ?? []).some((x) => x.endpoint === plain), 10_000, 100);
    expect((await timedCurl(lab, url(lab.server.v4, 8080, '/'), ['--fail'])).code).toBe(0);
  }, 300_000);
});
