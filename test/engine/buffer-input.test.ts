// Adapters hand the engines node Buffers (NFQUEUE does), which they may reuse for the next
// packet; Buffer#slice is a view, not a copy. What an engine keeps from a packet (the held SYN,
// the flow's addresses) must survive the adapter scribbling over its buffer afterwards.
import { TCP_FLAGS } from '../../common/wire/tcp';
import { CLIENT, CPORT, Lab, SPORT, SYN_OPTIONS, decode, segment } from './harness';

test('the gateway keeps copies of the held SYN and the tuple, not views of the input', () => {
  const lab = new Lab();
  lab.hold = true;
  lab.fromClient({ seq: 1000, flags: TCP_FLAGS.SYN, options: SYN_OPTIONS() });
  const marked = lab.held[0]!.packet;
  const input = Buffer.from(marked);
  expect(lab.gateway.handlePacket(input, lab.now)).toEqual({ kind: 'hold' });
  const open = lab.gateway.takeActions().find((a) => a.kind === 'open-key-delivery');
  if (open?.kind !== 'open-key-delivery') throw new Error('no key delivery opened');
  input.fill(0x77); // the adapter reuses its buffer
  expect(lab.gateway.flows(lab.now)[0]!.client).toBe(`10.0.0.1:${CPORT}`);
  lab.gateway.handleKdFailure(open.connId, 'unreachable');
  const rst = lab.gateway.takeActions().find((a) => a.kind === 'originate');
  if (rst?.kind !== 'originate') throw new Error('the refused SYN got no RST');
  const r = decode(rst.packet);
  expect([...r.ip.dst]).toEqual([...CLIENT]);
  expect(r.tcp.dstPort).toBe(CPORT);
  expect(r.tcp.ack).toBe(1001);
});

test('the agent keeps a copy of the tuple, not a view of the input', () => {
  const lab = new Lab();
  const syn = Buffer.from(segment('client', { seq: 9000, flags: TCP_FLAGS.SYN, options: SYN_OPTIONS() }));
  expect(lab.agent.handlePacket(syn, lab.now).kind).toBe('rewrite');
  syn.fill(0x55); // the adapter reuses its buffer
  expect(lab.agent.flows(lab.now).map((f) => [f.client, f.server])).toEqual([[`10.0.0.1:${CPORT}`, `10.0.0.2:${SPORT}`]]);
});
