// Rule 8 (bounded resources) for the KDC's TCP adapter: a gateway that pipelines requests
// without reading answers stops being read once maxPendingPerConnection are unanswered; what is
// read is handled in slices, in order. The service is a stub here (its answers are held), so
// the test sees only the adapter's own bounds.
import * as net from 'node:net';
import type { Frame } from '../../common/protocol/framing';
import { KdcMetrics } from '../../kdc/metrics';
import { KdcTcpServer } from '../../kdc/server';
import { type KdcService, type ServiceAnswer, silentLog } from '../../kdc/service';
import { LOOPBACK, makeLab, request } from './service.fixture';

test('a connection whose requests stay unanswered stops being read at maxPendingPerConnection (plus the read in hand)', async () => {
  const lab = await makeLab({ kind: 'embedded' });
  const gw = await lab.key('gw1');
  const handled: number[] = [];
  const release: ((a: ServiceAnswer) => void)[] = [];
  const stub = {
    handleFrame: (f: Frame) => {
      handled.push(f.raw[6] as number);
      return new Promise<ServiceAnswer>((r) => release.push(r));
    },
    frameError: () => ({ answer: null, close: true }),
  } as unknown as KdcService;
  const server = new KdcTcpServer(stub, new KdcMetrics(), silentLog, { listen: [{ host: LOOPBACK, port: 0 }], maxPendingPerConnection: 8 });
  const [addr] = await server.listen();
  const socket = net.connect({ host: LOOPBACK, port: (addr as net.AddressInfo).port });
  try {
    await new Promise((r) => socket.once('connect', r));
    const frame = request(gw, 'alice');
    const total = 5000; // ~1 MB: far more than one read
    for (let i = 0; i < total; i++) socket.write(frame);
    await new Promise((r) => setTimeout(r, 500));
    const first = handled.length;
    expect(first).toBeGreaterThanOrEqual(8);
    expect(first).toBeLessThan(total / 4);
    await new Promise((r) => setTimeout(r, 300));
    expect(handled.length).toBe(first); // paused: nothing more is read while answers are held
    // Answers flow again: reading resumes and every request is handled, none twice.
    const answer = { answer: new Uint8Array(0), close: false };
    for (;;) {
      const batch = release.splice(0);
      if (batch.length === 0 && handled.length === total) break;
      for (const r of batch) r(answer);
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(handled.length).toBe(total);
  } finally {
    socket.destroy();
    await server.close();
    await lab.cleanup();
  }
});
