// Hand-built capture files for tests: every byte placed explicitly, either byte order.

/** Little- or big-endian u16/u32 writer for hand-built capture files. */
export function u16(v: number, le: boolean): number[] {
  return le ? [v & 0xff, v >>> 8] : [v >>> 8, v & 0xff];
}
export function u32(v: number, le: boolean): number[] {
  const b = [v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
  return le ? b.reverse() : b;
}
export function pad4(b: number[]): number[] {
  return [...b, ...new Array<number>((4 - (b.length % 4)) % 4).fill(0)];
}

/** Classic pcap, built by hand: header, then records of [sec, frac, data, origLen?]. */
export function classic(magic: number, le: boolean, linkType: number, records: [number, number, Uint8Array, number?][], recordPad = 0): Uint8Array {
  const out = [...u32(magic, le), ...u16(2, le), ...u16(4, le), ...u32(0, le), ...u32(0, le), ...u32(65535, le), ...u32(linkType, le)];
  for (const [sec, frac, data, orig] of records) {
    out.push(...u32(sec, le), ...u32(frac, le), ...u32(data.length, le), ...u32(orig ?? data.length, le), ...new Array<number>(recordPad).fill(0), ...data);
  }
  return new Uint8Array(out);
}

export function block(type: number, body: number[], le: boolean): number[] {
  const padded = pad4(body);
  const total = 12 + padded.length;
  return [...u32(type, le), ...u32(total, le), ...padded, ...u32(total, le)];
}
export function shb(le: boolean): number[] {
  return block(0x0a0d0d0a, [...u32(0x1a2b3c4d, le), ...u16(1, le), ...u16(0, le), ...u32(0xffffffff, le), ...u32(0xffffffff, le)], le);
}
export function option(code: number, value: number[], le: boolean): number[] {
  return pad4([...u16(code, le), ...u16(value.length, le), ...value]);
}
export function idb(linkType: number, le: boolean, options: number[] = []): number[] {
  const opts = options.length > 0 ? [...options, ...u16(0, le), ...u16(0, le)] : [];
  return block(1, [...u16(linkType, le), ...u16(0, le), ...u32(0, le), ...opts], le);
}
export function epb(ifid: number, ts: bigint, data: Uint8Array, le: boolean, orig = data.length): number[] {
  return block(6, [...u32(ifid, le), ...u32(Number(ts >> 32n), le), ...u32(Number(ts & 0xffffffffn), le), ...u32(data.length, le), ...u32(orig, le), ...data], le);
}
