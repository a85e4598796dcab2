import fc from 'fast-check';
import { ByteReader, ByteWriter, EncodeError, fitStr, strBytes } from '../../common/protocol/codec';
import { bytesN, connId, str, tuple, u16, u32, u64, u8 } from './arbitraries';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('codec primitives', () => {
  it('writes big-endian integers, str, blob, addr and tuple byte-exactly', () => {
    const w = new ByteWriter(4)
      .u8(0xab)
      .u16(0x1234)
      .u32(0xdeadbeef)
      .u64(2 ** 53 - 1)
      .u64n(0xfedcba9876543210n)
      .str('é')
      .blob(Uint8Array.of(1, 2))
      .addr(Uint8Array.of(10, 0, 0, 1))
      .tuple({ clientAddr: Uint8Array.of(1, 2, 3, 4), clientPort: 80, serverAddr: Uint8Array.of(5, 6, 7, 8), serverPort: 443 });
    expect(hex(w.finish())).toBe(
      'ab' + '1234' + 'deadbeef' + '001fffffffffffff' + 'fedcba9876543210' + '02c3a9' + '00020102' + '040a000001' +
        '0401020304' + '0050' + '0405060708' + '01bb',
    );
  });

  it('round-trips every primitive', () => {
    fc.assert(
      fc.property(u8, u16, u32, u64, connId, str, fc.uint8Array({ maxLength: 300 }), tuple, bytesN(7), (a, b, c, d, e, s, blob, t, fixed) => {
        const bytes = new ByteWriter(1).u8(a).u16(b).u32(c).u64(d).u64n(e).str(s).blob(blob).tuple(t).bytes(fixed, 7).finish();
        const r = new ByteReader(bytes);
        const got = [r.u8('a'), r.u16('b'), r.u32('c'), r.u64('d'), r.u64n('e'), r.str('s'), r.blob('blob'), r.tuple('t'), r.bytes(7, 'f')];
        const done = r.finish(got);
        expect(done.ok && done.value).toEqual([a, b, c, d, e, s, blob, t, fixed]);
      }),
    );
  });

  it('records the first error with its field and offset, and never throws', () => {
    const r = new ByteReader(Uint8Array.of(0, 1, 2), 10);
    expect(r.u16('first')).toBe(1);
    expect(r.u32('second')).toBe(0);
    expect(r.u8('third')).toBe(0);
    expect(r.finish(null)).toEqual({ ok: false, error: { kind: 'truncated', field: 'second', offset: 12, detail: 'need 4 bytes, have 1' } });
  });

  it('rejects trailing bytes', () => {
    const r = new ByteReader(Uint8Array.of(1, 2));
    r.u8('x');
    const res = r.finish(1);
    expect(res.ok === false && res.error.kind).toBe('trailing-bytes');
  });

  it.each([
    ['u64 above 2^53-1', '0020000000000000', (r: ByteReader) => r.u64('v'), 'bad-value'],
    ['empty str', '00', (r: ByteReader) => r.str('v'), 'bad-value'],
    ['invalid UTF-8', '02c328', (r: ByteReader) => r.str('v'), 'bad-value'],
    ['lone surrogate as UTF-8', '03eda080', (r: ByteReader) => r.str('v'), 'bad-value'],
    ['address family 5', '0501020304', (r: ByteReader) => r.addr('v'), 'bad-value'],
    ['truncated blob', '000501', (r: ByteReader) => r.blob('v'), 'truncated'],
    ['mixed-family tuple', '04010203040050' + '06' + '00'.repeat(16) + '01bb', (r: ByteReader) => r.tuple('v'), 'bad-value'],
  ])('rejects %s', (_name, input, read, kind) => {
    const r = new ByteReader(Buffer.from(input, 'hex'));
    read(r);
    const res = r.finish(null);
    expect(res.ok === false && res.error.kind).toBe(kind);
  });

  it('keeps a leading BOM through a round trip', () => {
    const bytes = new ByteWriter().str('\uFEFFx').finish();
    expect(new ByteReader(bytes).str('s')).toBe('\uFEFFx');
  });

  it.each([
    ['u8 256', (w: ByteWriter) => w.u8(256)],
    ['u16 -1', (w: ByteWriter) => w.u16(-1)],
    ['u32 1.5', (w: ByteWriter) => w.u32(1.5)],
    ['u64 2^53', (w: ByteWriter) => w.u64(2 ** 53)],
    ['u64n 2^64', (w: ByteWriter) => w.u64n(1n << 64n)],
    ['empty str', (w: ByteWriter) => w.str('')],
    ['256-byte str', (w: ByteWriter) => w.str('x'.repeat(256))],
    ['lone surrogate', (w: ByteWriter) => w.str('a\uD800')],
    ['blob > 65535', (w: ByteWriter) => w.blob(new Uint8Array(65536))],
    ['5-byte addr', (w: ByteWriter) => w.addr(new Uint8Array(5))],
    ['wrong fixed length', (w: ByteWriter) => w.bytes(new Uint8Array(3), 4)],
    [
      'mixed-family tuple',
      (w: ByteWriter) => w.tuple({ clientAddr: new Uint8Array(4), clientPort: 1, serverAddr: new Uint8Array(16), serverPort: 2 }),
    ],
  ])('writer refuses %s', (_name, write) => {
    expect(() => write(new ByteWriter())).toThrow(EncodeError);
  });

  it('fitStr always yields a valid str', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 400 }), (s) => {
        expect(strBytes(fitStr(s))).not.toBeNull();
      }),
    );
    expect(fitStr('')).toBe('-');
    expect(fitStr('é'.repeat(200))).toBe('é'.repeat(127));
  });
});
