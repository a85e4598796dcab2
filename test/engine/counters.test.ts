// Counters: handles bumped as plain fields on the per-packet path and names bumped through
// inc() are one set of counters, and snapshot() shows what it always showed.
import { Counters } from '../../common/engine/counters';

test('handles and inc() count the same counters; snapshot shows what was counted', () => {
  const c = new Counters<'packets' | 'pass' | 'refused' | 'idle'>();
  const packets = c.counter('packets');
  c.counter('idle'); // a handle nobody bumped yet is not shown
  packets.value++;
  packets.value++;
  c.inc('packets');
  c.inc('refused', 0); // inc'ed, even by zero: shown
  expect(c.get('packets')).toBe(3);
  expect(c.counter('packets')).toBe(packets);
  expect(c.get('pass')).toBe(0);
  expect(c.snapshot()).toEqual({ packets: 3, refused: 0 });
  expect(Object.keys(c.snapshot())).toEqual(['packets', 'refused']);
});
