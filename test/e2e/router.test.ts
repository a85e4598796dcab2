// Router mode end to end: the client host's agent marks protected flows, the gateway namespace
// routes between the client and server links. The shared datapath suite (100 MB each way,
// plaintext only on the server side, curl/redis-cli/iperf3, keys gone after the linger), plus
// redis-benchmark, hundreds of concurrent short connections, and an unprotected port that
// neither daemon ever sees.
import { labBytesSha256 } from '../../lab/http-server';
import {
  biggestStream,
  clientShell,
  counter,
  daemonStatus,
  downloadSha256,
  fromPort,
  hasTcpOption,
  labBytes,
  streams,
  tcpSegments,
  touchesPort,
  uniqueSeed,
  url,
} from './helpers';
import { datapathSuite } from './suite';

datapathSuite({
  mode: 'router',
  integrityBytes: 100_000_000,
  serverSidePlaintext: true,
  extra: (lab) => {
    test('redis-benchmark: 20 parallel clients per test, every one a keyed flow', async () => {
      const before = await daemonStatus(lab(), 'gateway');
      const bench = await lab().client$('redis-benchmark', ['-h', lab().server.v4, '-p', '6379', '-n', '5000', '-c', '20', '-t', 'set,get,lpush', '--csv'], { timeoutMs: 180_000 });
      for (const t of ['SET', 'GET', 'LPUSH']) expect(bench.stdout).toContain(`"${t}"`);
      const after = await daemonStatus(lab(), 'gateway');
      expect(counter(after, 'flows-established') - counter(before, 'flows-established')).toBeGreaterThanOrEqual(20);
      expect(counter(after, 'refused') - counter(before, 'refused')).toBe(0);
    }, 240_000);

    test('300 concurrent short connections (xargs -P 50 curl) all succeed, each a keyed flow', async () => {
      const before = await daemonStatus(lab(), 'gateway');
      const n = 300;
      const r = await clientShell(lab(), `seq ${n} | xargs -P 50 -I{} curl -sS --max-time 30 -o /dev/null -w '%{http_code}\\n' ${url(lab().server.v4, 80, '/?n={}')}`);
      const codes = r.stdout.trim().split('\n');
      expect(codes).toHaveLength(n);
      expect(codes.filter((c) => c === '200')).toHaveLength(n);
      const after = await daemonStatus(lab(), 'gateway');
      expect(counter(after, 'flows-established') - counter(before, 'flows-established')).toBe(n);
      expect(counter(after, 'syn-released') - counter(before, 'syn-released')).toBe(n);
      expect(counter(after, 'refused') - counter(before, 'refused')).toBe(0);
    }, 240_000);

    test('scope: a flow to the unprotected port 8080 passes unchanged and never enters the datapath', async () => {
      const seed = uniqueSeed('plain');
      const n = 300_000;
      const [g0, a0] = [await daemonStatus(lab(), 'gateway'), await daemonStatus(lab(), 'agent')];
      const caps = await lab().startCaptures('plain');
      try {
        expect(await downloadSha256(lab(), url(lab().server.v4, 8080, `/bytes/${n}?seed=${seed}`))).toBe(labBytesSha256(seed, n));
      } finally {
        await lab().stopCaptures();
      }
      const [g1, a1] = [await daemonStatus(lab(), 'gateway'), await daemonStatus(lab(), 'agent')];
      const wire = tcpSegments(caps.wire).filter(touchesPort(8080));
      const server = tcpSegments(caps.server).filter(touchesPort(8080));
      // The plaintext is on the wire as sent...
      const [name, onWire] = biggestStream(streams(wire), fromPort(8080));
      expect(Buffer.from(onWire.data).includes(labBytes(seed, n))).toBe(true);
      // ...byte for byte what the server sent, and no ciphergate option anywhere.
      const onServer = streams(server).get(name);
      expect(onServer && Buffer.compare(onServer.data, onWire.data)).toBe(0);
      expect(wire.some((s) => hasTcpOption(s, 253))).toBe(false);
      // Neither daemon was handed one packet of it (only SYNs to services and keyed flows are queued).
      expect(g1.datapath.packets).toBe(g0.datapath.packets);
      expect(a1.datapath.packets).toBe(a0.datapath.packets);
    }, 120_000);
  },
});
