// connId as an agent with worker processes draws it (common/protocol/conn-id.ts): the agent's
// primary routes every key-delivery message by connId mod workers, so a connId that lands in
// the wrong slot would send a flow's TICKET to a worker that never saw its SYN.
import fc from 'fast-check';
import { connIdWorker, drawConnId } from '../../common/protocol/conn-id';
import { Lab } from '../engine/harness';

test('a drawn connId lands in its slot for any random bytes, including the top of the range', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 8, maxLength: 8 }), fc.integer({ min: 1, max: 64 }), fc.nat(), (bytes, count, i) => {
      const index = i % count;
      const id = drawConnId(bytes, { index, count });
      expect(connIdWorker(id, count)).toBe(index);
      expect(id).toBeGreaterThanOrEqual(0n);
      expect(id).toBeLessThan(1n << 64n);
    }),
  );
  const top = new Uint8Array(8).fill(0xff);
  expect(connIdWorker(drawConnId(top, { index: 6, count: 7 }), 7)).toBe(6);
});

test('without a slot, or with one worker, the id is the random bytes unchanged', () => {
  const bytes = Uint8Array.of(0x80, 1, 2, 3, 4, 5, 6, 7);
  expect(drawConnId(bytes)).toBe(0x8001020304050607n);
  expect(drawConnId(bytes, { index: 0, count: 1 })).toBe(0x8001020304050607n);
  expect(() => drawConnId(new Uint8Array(7))).toThrow(RangeError);
});

test('the agent engine of worker 2 of 3 puts only its own connIds on the wire, and keying works', () => {
  for (let n = 0; n < 8; n++) {
    const lab = new Lab({ seed: `slot-${n}`, setup: { agentSlot: { index: 2, count: 3 } } });
    lab.handshake(1000 + n);
    const [flow] = lab.agent.flows(lab.now);
    expect(connIdWorker(BigInt(`0x${flow!.connId}`), 3)).toBe(2);
    expect(flow!.state).toBe('established');
  }
});
