// The keyed data path of one flow, shared by the agent and the gateway. Each role protects one
// direction and unprotects the other: the agent protects client-to-server, the gateway
// server-to-client. Sequence and acknowledgement numbers are never changed (rule 3).
import type { CryptoBackend } from '../crypto/backend';
import type { FlowKeys } from '../protocol/key-schedule';
import { zeroizeFlowKeys } from '../protocol/key-schedule';
import type { OptionConfig } from '../protocol/options';
import { type DirectionKeys, type SegmentError, directionKeys, protectSegment, unprotectSegment } from '../protocol/segment';
import { type Result, ok, err } from '../result';
import type { IpView } from '../wire/ip';
import { TCP_FLAGS, type TcpView } from '../wire/tcp';
import { MAX_STREAM_OFFSET, StreamOffset } from './stream-offset';

export type Direction = 'c2s' | 's2c';

export type CipherError = SegmentError | 'offset-out-of-range' | 'no-server-isn';

export interface SegmentOutcome {
  packet: Uint8Array;
  /** The segment carried an authenticated FIN / RST. */
  fin: boolean;
  rst: boolean;
  /** The payload was dropped because every byte of it was already acknowledged (a probe). */
  strippedPayload: boolean;
}

const opposite = (d: Direction): Direction => (d === 'c2s' ? 's2c' : 'c2s');

export class FlowCipher {
  private readonly streams: Record<Direction, StreamOffset | null>;
  /** Per direction: the highest offset of that direction the other side has acknowledged. */
  private readonly acked: Record<Direction, number> = { c2s: 0, s2c: 0 };
  /** Per direction: the offset just past its FIN, once an accepted segment carried one. */
  private readonly finEnd: Record<Direction, number | null> = { c2s: null, s2c: null };
  private zeroed = false;
  private readonly directions: Record<Direction, DirectionKeys>;

  constructor(
    backend: CryptoBackend,
    private readonly option: OptionConfig,
    private readonly keys: FlowKeys,
    clientIsn: number,
  ) {
    this.streams = { c2s: new StreamOffset(clientIsn), s2c: null };
    this.directions = {
      c2s: directionKeys(backend, keys.c2sEnc, keys.c2sMac),
      s2c: directionKeys(backend, keys.s2cEnc, keys.s2cMac),
    };
  }

  /** The key-confirmation keys (cipher sync, step 4). */
  get confirmKeys(): Pick<FlowKeys, 'confirmGateway' | 'confirmAgent'> {
    return this.keys;
  }

  get serverIsnKnown(): boolean {
    return this.streams.s2c !== null;
  }

  /** The server's ISN, learnt from the SYN-ACK (authenticated or, at the gateway, from the server). */
  setServerIsn(isn: number): void {
    if (this.streams.s2c === null) this.streams.s2c = new StreamOffset(isn);
  }

  get isZeroed(): boolean {
    return this.zeroed;
  }

  private directionKeys(dir: Direction): DirectionKeys {
    return this.directions[dir];
  }

  /** The stream offset of the segment's sequence number, or why it has none (no allocation). */
  private locate(tcp: TcpView, stream: StreamOffset | null): number | CipherError {
    if (stream === null) return 'no-server-isn';
    const offset = stream.offsetOf(tcp.seq);
    const seqLen = tcp.payloadEnd - tcp.payloadStart + 2; // + SYN + FIN at most
    if (offset < 0 || offset + seqLen > MAX_STREAM_OFFSET) return 'offset-out-of-range';
    return offset;
  }

  /** Records what an accepted segment of direction `dir` tells about both streams. */
  private accept(dir: Direction, tcp: TcpView, stream: StreamOffset, offset: number): void {
    const flags = tcp.flags;
    const seqLen = tcp.payloadEnd - tcp.payloadStart + (flags & TCP_FLAGS.SYN ? 1 : 0) + (flags & TCP_FLAGS.FIN ? 1 : 0);
    stream.advance(offset + seqLen);
    if (flags & TCP_FLAGS.FIN) this.finEnd[dir] = offset + seqLen;
    const peer = this.streams[opposite(dir)];
    if (flags & TCP_FLAGS.ACK && peer !== null) {
      const ackedOffset = peer.offsetOf(tcp.ack);
      if (ackedOffset > this.acked[opposite(dir)]) this.acked[opposite(dir)] = ackedOffset;
    }
  }

  /** Encrypts and tags a segment travelling in `dir` (from this side's plaintext host). */
  protect(dir: Direction, packet: Uint8Array, ip: IpView, tcp: TcpView): Result<SegmentOutcome, CipherError> {
    const stream = this.streams[dir];
    const offset = this.locate(tcp, stream);
    if (typeof offset !== 'number') return err(offset);
    const syn = (tcp.flags & TCP_FLAGS.SYN) !== 0;
    const payloadOffset = offset + (syn ? 1 : 0);
    const payloadLength = tcp.payloadEnd - tcp.payloadStart;
    // Bytes the peer has already acknowledged may come back with other contents (keepalive
    // probes carry a garbage byte at SND.UNA-1). Encrypting them again could put a second
    // plaintext under the same keystream bytes, so they travel as an empty segment instead.
    const strippedPayload = payloadLength > 0 && !syn && payloadOffset + payloadLength <= this.acked[dir];
    const out = protectSegment(this.directionKeys(dir), this.option, {
      packet,
      ip,
      tcp,
      offset,
      payloadOffset,
      stripPayload: strippedPayload,
    });
    if (!out.ok) return out;
    this.accept(dir, tcp, stream as StreamOffset, offset);
    return ok({ packet: out.value, fin: (tcp.flags & TCP_FLAGS.FIN) !== 0, rst: (tcp.flags & TCP_FLAGS.RST) !== 0, strippedPayload });
  }

  /**
   * Verifies, decrypts and untags a segment travelling in `dir` (from the encrypted wire). While
   * the server's ISN is unknown, a SYN-ACK or RST is tried with its own sequence number as the
   * ISN, which is adopted only if the segment authenticates: a forged one cannot set it.
   */
  unprotect(dir: Direction, packet: Uint8Array, ip: IpView, tcp: TcpView): Result<SegmentOutcome, CipherError> {
    const known = this.streams[dir];
    const tentative = known === null && tcp.flags & (TCP_FLAGS.SYN | TCP_FLAGS.RST) ? new StreamOffset(tcp.seq) : null;
    const stream = known ?? tentative;
    const offset = this.locate(tcp, stream);
    if (typeof offset !== 'number') return err(offset);
    const syn = (tcp.flags & TCP_FLAGS.SYN) !== 0;
    const out = unprotectSegment(this.directionKeys(dir), this.option, packet, ip, tcp, offset, offset + (syn ? 1 : 0));
    if (!out.ok) return out;
    if (tentative !== null) this.streams[dir] = tentative;
    this.accept(dir, tcp, stream as StreamOffset, offset);
    return ok({ packet: out.value, fin: (tcp.flags & TCP_FLAGS.FIN) !== 0, rst: (tcp.flags & TCP_FLAGS.RST) !== 0, strippedPayload: false });
  }

  /**
   * Both directions have sent a FIN and each FIN has been acknowledged: the connection is closed
   * both ways, and the flow may linger (for resent final ACKs), then be discarded. Not before:
   * data and FINs still in flight (lost, delayed) must keep their keys.
   */
  get finished(): boolean {
    const { c2s, s2c } = this.finEnd;
    return c2s !== null && s2c !== null && this.acked.c2s >= c2s && this.acked.s2c >= s2c;
  }

  /** Zeroes every key of the flow (rule 5). Idempotent. */
  zeroize(): void {
    if (this.zeroed) return;
    this.directions.c2s.keystream.close();
    this.directions.s2c.keystream.close();
    this.directions.c2s.mac.destroy();
    this.directions.s2c.mac.destroy();
    zeroizeFlowKeys(this.keys);
    this.zeroed = true;
  }

  /** For tests of rule 5: whether every key byte is zero (and the prepared MAC keys wiped). */
  keysAreZero(): boolean {
    const macsWiped = this.directions.c2s.mac.destroyed && this.directions.s2c.mac.destroyed;
    return macsWiped && Object.values(this.keys).every((k: Uint8Array) => k.every((b) => b === 0));
  }
}
