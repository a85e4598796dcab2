// The key-delivery transport over real loopback TCP (runtime/kd-transport.ts): one connection
// multiplexes many flows' sessions, the listener answers on the connection a flow spoke on, and
// the agent's primary can find and end the sessions of flows whose worker died.
import { KdErrorCode, type KdMessage, KdType } from '../../common/protocol/kd-messages';
import { KdDialer, KdListener } from '../../runtime/kd-transport';

const hello = (connId: bigint): KdMessage => ({
  type: KdType.Hello,
  connId,
  gatewayPrincipal: 'gw1.example',
  tuple: { clientAddr: Uint8Array.of(127, 0, 0, 1), clientPort: 40_000, serverAddr: Uint8Array.of(127, 0, 0, 1), serverPort: 80 },
  clientIsn: 7,
  suite: 1,
  gatewayNonce: new Uint8Array(16).fill(9),
});

function waitFor<T>(list: T[], n: number): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const poll = () => (list.length >= n ? resolve(list) : Date.now() - t0 > 5000 ? reject(new Error(`only ${list.length} of ${n} events`)) : setTimeout(poll, 5));
    poll();
  });
}

test('sessions of several flows on one connection; ending those of one worker leaves the rest', async () => {
  const atAgent: bigint[] = [];
  const failures: [bigint, string][] = [];
  const listener = new KdListener({ message: (connId) => atAgent.push(connId), failure: (connId, reason) => failures.push([connId, reason]) });
  const atGateway: KdMessage[] = [];
  const dialer = new KdDialer({ message: (_c, m) => atGateway.push(m), failure: () => undefined }, { connectTimeoutMs: 1000, idleMs: 60_000 });
  try {
    const { port } = await listener.listen('127.0.0.1', 0);
    for (const id of [10n, 11n, 12n, 13n]) dialer.open(id, { addr: Uint8Array.of(127, 0, 0, 1), port }, hello(id));
    await waitFor(atAgent, 4);
    expect(listener.connections).toBe(1);
    expect(dialer.connections).toBe(1);
    expect(listener.flowsWhere(() => true).sort()).toEqual([10n, 11n, 12n, 13n]);

    // Worker 1 of 2 died: its flows (odd connIds) are told and forgotten; the others stay.
    const lost = listener.flowsWhere((c) => c % 2n === 1n);
    expect(lost.sort()).toEqual([11n, 13n]);
    for (const id of lost) {
      listener.send(id, { type: KdType.Error, connId: id, code: KdErrorCode.UnknownConnection, reason: 'agent worker restarting' });
      listener.close(id);
    }
    await waitFor(atGateway, 2);
    expect(atGateway.map((m) => [m.connId, m.type])).toEqual([
      [11n, KdType.Error],
      [13n, KdType.Error],
    ]);
    expect(listener.flowsWhere(() => true).sort()).toEqual([10n, 12n]);
    // A forgotten flow has no session any more: sending on it is a failure of that flow only.
    listener.send(11n, { type: KdType.Confirm, connId: 11n, agentConfirm: new Uint8Array(32) });
    expect(failures).toEqual([[11n, 'no key-delivery session']]);
    listener.send(10n, { type: KdType.Confirm, connId: 10n, agentConfirm: new Uint8Array(32) });
    await waitFor(atGateway, 3);
    expect(atGateway[2]).toMatchObject({ type: KdType.Confirm, connId: 10n });
  } finally {
    dialer.closeAll();
    await listener.closeAll();
  }
});
