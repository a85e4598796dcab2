// What a flow of either role holds once it asked for encryption, and the bookkeeping both roles
// do the same way: closing (linger) and what `status` shows.
import type { CryptoBackend } from '../crypto/backend';
import type { RandomSource } from '../crypto/random';
import type { FlowTuple } from '../protocol/codec';
import { ipAddressToString } from '../wire/address';
import type { FlowCipher } from './flow-cipher';
import type { TableEntry } from './flow-table';

/** What an engine is given instead of reaching for globals: crypto, and randomness. */
export interface EngineDeps {
  backend: CryptoBackend;
  random: RandomSource;
}

export interface KeyedFlow<State extends string> extends TableEntry {
  key: string;
  state: State;
  connId: bigint;
  tuple: FlowTuple;
  createdAt: number;
  cipher: FlowCipher | null;
  /** Closed both ways: keys are kept until `deadline` for resent FINs and final ACKs. */
  lingering: boolean;
  deadline: number;
}

export interface FlowStatus<State extends string> {
  connId: string;
  state: State;
  client: string;
  server: string;
  ageMs: number;
  keyed: boolean;
  lingering: boolean;
}

/**
 * After a segment of a keyed flow was accepted: an authenticated RST ends the flow (returns
 * true: discard it now); once both FINs are acknowledged the flow lingers, and every accepted
 * segment while it lingers restarts the linger.
 */
export function endsFlow(flow: KeyedFlow<string>, rst: boolean, now: number, lingerMs: number): boolean {
  if (rst) return true;
  if (flow.lingering || (flow.cipher as FlowCipher).finished) {
    flow.lingering = true;
    flow.deadline = now + lingerMs;
  }
  return false;
}

export function isKeyed(flow: KeyedFlow<string>): boolean {
  return flow.cipher !== null && !flow.cipher.isZeroed;
}

/** How many flows hold live keys (status shows zero once flows have ended, rule 5). */
export function keyedCount(flows: Iterable<[unknown, KeyedFlow<string>]>): number {
  let n = 0;
  for (const [, flow] of flows) if (isKeyed(flow)) n++;
  return n;
}

/** For tests of rule 5: the ciphers of all flows, live or not. */
export function ciphersOf(flows: Iterable<[unknown, KeyedFlow<string>]>): FlowCipher[] {
  return [...flows].flatMap(([, f]) => (f.cipher ? [f.cipher] : []));
}

const endpoint = (addr: Uint8Array, port: number): string => (addr.length === 16 ? `[${ipAddressToString(addr)}]:${port}` : `${ipAddressToString(addr)}:${port}`);

export function describeFlow<State extends string>(flow: KeyedFlow<State>, now: number): FlowStatus<State> {
  return {
    connId: flow.connId.toString(16).padStart(16, '0'),
    state: flow.state,
    client: endpoint(flow.tuple.clientAddr, flow.tuple.clientPort),
    server: endpoint(flow.tuple.serverAddr, flow.tuple.serverPort),
    ageMs: now - flow.createdAt,
    keyed: isKeyed(flow),
    lingering: flow.lingering,
  };
}
