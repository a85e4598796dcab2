import fc from 'fast-check';
import { decodeBinding, encodeBinding } from '../../common/protocol/binding';
import { FrameDecoder, MAX_FRAME_LENGTH, decodeFrame, encodeFrame } from '../../common/protocol/framing';
import { KdErrorCode, KdType, decodeKdFrame, decodeKdMessage, encodeKdMessage, kdErrorCodeFor } from '../../common/protocol/kd-messages';
import { KdcErrorCode, KdcType, decodeKdcFrame, decodeKdcMessage, encodeKdcMessage, kdcErrorCodeFor } from '../../common/protocol/kdc-messages';
import { decodeTicket, encodeTicket } from '../../common/protocol/ticket';
import { binding, bytesN, chunked, kdMessage, kdcMessage, str, u32 } from './arbitraries';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('round trips decode(encode(x)) = x', () => {
  it('binding', () => {
    fc.assert(fc.property(binding, (b) => expect(decodeBinding(encodeBinding(b))).toEqual({ ok: true, value: b })));
  });

  it('ticket envelope', () => {
    const envelope = fc.record({ owner: str, kvno: u32, requestId: bytesN(16), nonce: bytesN(12), sealed: fc.uint8Array({ minLength: 48, maxLength: 700 }) });
    fc.assert(fc.property(envelope, (t) => expect(decodeTicket(encodeTicket(t))).toEqual({ ok: true, value: t })));
  });

  it('every key-delivery message', () => {
    fc.assert(
      fc.property(kdMessage, (m) => {
        const frame = encodeKdMessage(m);
        const d = decodeKdMessage(frame);
        expect(d.ok && d.value.message).toEqual(m);
        expect(d.ok && d.value.frame.raw).toEqual(frame);
      }),
    );
  });

  it('every KDC message', () => {
    fc.assert(
      fc.property(kdcMessage, (m) => {
        const d = decodeKdcMessage(encodeKdcMessage(m));
        expect(d.ok && d.value.message).toEqual(m);
      }),
    );
  });
});

describe('framing', () => {
  it('is u32 length | version | type | body', () => {
    const f = encodeFrame(0x7f, (w) => w.u8(0xaa));
    expect(hex(f)).toBe('00000003' + '01' + '7f' + 'aa');
    expect(decodeFrame(f)).toEqual({ ok: true, value: { version: 1, type: 0x7f, body: Uint8Array.of(0xaa), raw: f } });
  });

  it('ERROR for another protocol version is a version error; unknown types and junk are malformed', () => {
    const v2 = encodeFrame(KdType.Confirm, (w) => w.u64n(1n).bytes(new Uint8Array(32)), 2);
    const d = decodeKdMessage(v2);
    expect(d.ok === false && d.error.kind).toBe('version');
    expect(d.ok === false && kdErrorCodeFor(d.error)).toBe(KdErrorCode.Version);
    const unknown = decodeKdMessage(encodeFrame(0x10, () => undefined));
    expect(unknown.ok === false && unknown.error.kind).toBe('unknown-type');
    expect(unknown.ok === false && kdErrorCodeFor(unknown.error)).toBe(KdErrorCode.Malformed);
    const kdc = decodeKdcMessage(encodeFrame(KdcType.IssueError, (w) => w.bytes(new Uint8Array(16)).u16(99).str('x')));
    expect(kdc.ok === false && kdc.error.field).toBe('issueError.code');
    expect(kdc.ok === false && kdcErrorCodeFor(kdc.error)).toBe(KdcErrorCode.Malformed);
  });

  it('FrameDecoder yields the same frames however the stream is chunked', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(kdMessage.map(encodeKdMessage), kdcMessage.map(encodeKdcMessage)), { minLength: 1, maxLength: 6 }).chain((frames) => {
          const stream = Uint8Array.from(Buffer.concat(frames));
          return fc.tuple(fc.constant(frames), chunked(stream));
        }),
        ([frames, chunks]) => {
          const dec = new FrameDecoder();
          const got: Uint8Array[] = [];
          for (const c of chunks) {
            const r = dec.push(c);
            if (!r.ok) throw new Error(r.error.detail);
            got.push(...r.value.map((f) => f.raw));
          }
          expect(got).toEqual(frames);
          expect(dec.buffered).toBe(0);
        },
      ),
    );
  });

  it('FrameDecoder refuses lengths outside 2..max and stays failed', () => {
    const small = new FrameDecoder();
    expect(small.push(Uint8Array.of(0, 0, 0, 1, 1)).ok).toBe(false);
    expect(small.push(encodeKdMessage({ type: KdType.Confirm, connId: 1n, agentConfirm: new Uint8Array(32) })).ok).toBe(false);

    const big = new FrameDecoder({ maxLength: 100 });
    const r = big.push(Uint8Array.of(0, 0, 0, 101));
    expect(r.ok === false && r.error.kind).toBe('oversize');
    expect(new FrameDecoder().push(Uint8Array.of(0, 1, 0, 1)).ok).toBe(false); // 65537
    expect(() => new FrameDecoder({ maxLength: MAX_FRAME_LENGTH + 1 })).toThrow(RangeError);
  });

  it('FrameDecoder holds at most one partial frame', () => {
    const dec = new FrameDecoder();
    expect(dec.push(Uint8Array.of(0, 1))).toEqual({ ok: true, value: [] });
    expect(dec.buffered).toBe(2);
    expect(dec.push(Uint8Array.of(0, 0))).toEqual({ ok: true, value: [] }); // announces 65536 bytes
    for (let i = 0; i < 63; i++) expect(dec.push(new Uint8Array(1024))).toEqual({ ok: true, value: [] });
    expect(dec.buffered).toBe(4 + 63 * 1024);
    const out = dec.push(Uint8Array.from([...new Array<number>(1024).fill(0), 0, 0, 0, 2, 1]));
    expect(out.ok && out.value.map((f) => f.raw.length)).toEqual([4 + 65536]);
    expect(dec.buffered).toBe(5);
  });
});

describe('hostile bytes never throw and give typed errors', () => {
  const kinds = ['truncated', 'trailing-bytes', 'bad-value', 'version', 'unknown-type', 'oversize'];
  const decoders: [string, (b: Uint8Array) => { ok: boolean; error?: { kind: string } }][] = [
    ['binding', decodeBinding],
    ['ticket', decodeTicket],
    ['kd', decodeKdMessage],
    ['kdc', decodeKdcMessage],
    ['frame', (b) => decodeFrame(b)],
  ];

  it.each(decoders)('%s: arbitrary bytes', (_name, decode) => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
        const r = decode(b);
        if (!r.ok) expect(kinds).toContain(r.error?.kind);
      }),
      { numRuns: 1000 },
    );
  });

  it('every truncation and single-byte mutation of valid frames', () => {
    fc.assert(
      fc.property(fc.oneof(kdMessage.map(encodeKdMessage), kdcMessage.map(encodeKdcMessage)), fc.nat(), fc.integer({ min: 0, max: 255 }), (frame, pos, v) => {
        for (let cut = 0; cut < frame.length; cut++) {
          const r = decodeKdMessage(frame.subarray(0, cut));
          expect(r.ok === false && r.error.kind).toBe('truncated');
          expect(decodeKdcMessage(frame.subarray(0, cut)).ok).toBe(false);
        }
        const mutated = frame.slice();
        mutated[pos % frame.length] = v;
        for (const decode of [decodeKdMessage, decodeKdcMessage]) {
          const r = decode(mutated);
          if (!r.ok) expect(kinds).toContain(r.error.kind);
        }
        // Decoding a frame body with the wrong protocol's decoder is an error, not an exception.
        const f = decodeFrame(mutated);
        if (f.ok) {
          expect(typeof decodeKdFrame(f.value).ok).toBe('boolean');
          expect(typeof decodeKdcFrame(f.value).ok).toBe('boolean');
        }
      }),
      { numRuns: 200 },
    );
  });

  it('FrameDecoder on arbitrary chunks never throws', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 10 }), (chunks) => {
        const dec = new FrameDecoder({ maxLength: 256 });
        for (const c of chunks) {
          const r = dec.push(c);
          if (r.ok) for (const f of r.value) expect(typeof decodeKdFrame(f).ok).toBe('boolean');
        }
      }),
      { numRuns: 1000 },
    );
  });
});
