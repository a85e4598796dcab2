// One or more tests per rule of DESIGN.md section 3, on the real engines (simulation in
// test/sim covers the same rules under random loss, reordering and re-segmentation).
import { KdErrorCode, KdType } from '../../common/protocol/kd-messages';
import { scanOptions, DEFAULT_OPTION_CONFIG } from '../../common/protocol/options';
import { TCP_FLAGS } from '../../common/wire/tcp';
import { nodeBackend } from '../../common/crypto/node-backend';
import { seededRandom } from '../../common/crypto/random';
import { parseEndpoint } from '../../common/engine/endpoints';
import { createTrio } from '../../pipeline/setup';
import { CLIENT, Lab, SERVER, SYN_OPTIONS, decode, segment, text } from './harness';

const endpoint = (() => {
  const e = parseEndpoint('10.0.0.2:5432');
  if (typeof e === 'string') throw new Error(e);
  return e;
})();

const findMss = (packet: Uint8Array): number | undefined => {
  const opt = decode(packet).tcp.options.find((o) => o.kind === 2);
  return opt ? (opt.data[0]! << 8) | opt.data[1]! : undefined;
};
const ours = (packet: Uint8Array) => {
  const r = scanOptions(Buffer.from(decode(packet).tcp.options.length ? packet.subarray(40, 20 + (packet[32]! >> 4) * 4) : new Uint8Array(0)), DEFAULT_OPTION_CONFIG);
  if (!r.ok) throw new Error(r.error.detail);
  return r.value;
};

describe('rule 1: no leak', () => {
  test('payload crosses the wire encrypted, tagged, same length, and arrives exactly', () => {
    const lab = new Lab();
    const { c, s } = lab.handshake();
    lab.fromClient({ seq: c, ack: s, flags: TCP_FLAGS.ACK | TCP_FLAGS.PSH, payload: 'SELECT secret FROM vault;' });
    const onWire = lab.wire.at(-1)!.packet;
    expect(text(decode(onWire).tcp.payload)).not.toContain('secret');
    expect(decode(onWire).tcp.payload.length).toBe('SELECT secret FROM vault;'.length);
    expect(ours(onWire).tag).not.toBeNull();
    expect(text(decode(lab.server.at(-1)!).tcp.payload)).toBe('SELECT secret FROM vault;');
    // the server-side copy carries no ciphergate option
    expect(ours(lab.server.at(-1)!).tag).toBeNull();
  });

  test('a segment without a valid tag never reaches the server or the client', () => {
    const lab = new Lab();
    const { c, s } = lab.handshake();
    const before = { server: lab.server.length, client: lab.client.length };
    lab.inject(segment('client', { seq: c, ack: s, payload: 'DROP TABLE users;' }), 'c2s');
    lab.inject(segment('server', { seq: s, ack: c, payload: 'forged reply' }), 's2c');
    expect(lab.server.length).toBe(before.server);
    expect(lab.client.length).toBe(before.client);
    expect(lab.gateway.counters.get('auth-failed')).toBe(1);
    expect(lab.agent.counters.get('auth-failed')).toBe(1);
  });

  test('one flipped bit of ciphertext is rejected', () => {
    const lab = new Lab();
    const { c, s } = lab.handshake();
    lab.hold = true;
    lab.fromClient({ seq: c, ack: s, payload: 'transfer 100 to alice' });
    const tampered = lab.held.pop()!.packet.slice();
    tampered[tampered.length - 3]! ^= 0x01;
    const n = lab.server.length;
    lab.inject(tampered, 'c2s');
    expect(lab.server.length).toBe(n);
    expect(lab.gateway.counters.get('auth-failed')).toBe(1);
  });
});

describe('rule 2: no nonce reuse', () => {
  test('a retransmission re-segmented differently encrypts every byte the same way', () => {
    const lab = new Lab();
    const { c, s } = lab.handshake();
    const data = 'abcdefghijklmnopqrstuvwxyz0123456789';
    lab.fromClient({ seq: c, ack: s, payload: data });
    const whole = decode(lab.wire.at(-1)!.packet).tcp.payload;
    lab.fromClient({ seq: c + 10, ack: s, payload: data.slice(10, 30) });
    const part = decode(lab.wire.at(-1)!.packet).tcp.payload;
    expect(Buffer.from(part)).toEqual(Buffer.from(whole.subarray(10, 30)));
  });

  test('keepalive garbage below the acknowledged point travels without payload', () => {
    const lab = new Lab();
    const { c, s } = lab.handshake();
    lab.fromClient({ seq: c, ack: s, payload: 'hello' });
    lab.fromServer({ seq: s, ack: c + 5 }); // the server acknowledges all five bytes
    // A BSD-style keepalive: one garbage byte at SND.UNA-1, whose offset already carried 'o'.
    lab.fromClient({ seq: c + 4, ack: s, payload: 'X' });
    expect(decode(lab.wire.at(-1)!.packet).tcp.payload.length).toBe(0);
    expect(lab.agent.counters.get('probe-payload-stripped')).toBe(1);
  });

  test('offsets are 64-bit: the same stream position after the 2^32 wrap is a different keystream byte', () => {
    const lab = new Lab();
    const isn = 0xffff_fff0;
    const { c, s } = lab.handshake(isn, 7);
    lab.fromClient({ seq: c, ack: s, payload: 'A'.repeat(32) }); // crosses the wrap
    const first = decode(lab.wire.at(-1)!.packet);
    expect(first.tcp.seq).toBe(c);
    expect(lab.server.at(-1) && text(decode(lab.server.at(-1)!).tcp.payload)).toBe('A'.repeat(32));
  });
});

describe('rule 3: length preserving, sequence numbers untouched', () => {
  test('seq, ack, window and payload length are the same on every hop', () => {
    const lab = new Lab();
    const { c, s } = lab.handshake(123456, 654321);
    lab.fromServer({ seq: s, ack: c, payload: 'x'.repeat(1000) });
    const server = decode(segment('server', { seq: s, ack: c, payload: 'x'.repeat(1000) }));
    for (const p of [decode(lab.wire.at(-1)!.packet), decode(lab.client.at(-1)!)]) {
      expect(p.tcp.seq).toBe(server.tcp.seq);
      expect(p.tcp.ack).toBe(server.tcp.ack);
      expect(p.tcp.window).toBe(server.tcp.window);
      expect(p.tcp.payload.length).toBe(1000);
    }
  });
});

describe('rule 4: MTU safe', () => {
  test('MSS is clamped by 16 in the SYN and the SYN-ACK, and added where missing', () => {
    const lab = new Lab();
    lab.fromClient({ seq: 1, flags: TCP_FLAGS.SYN, options: SYN_OPTIONS() });
    expect(findMss(lab.wire.at(-1)!.packet)).toBe(1444);
    expect(findMss(lab.server.at(-1)!)).toBe(1444);
    lab.fromServer({ seq: 9, ack: 2, flags: TCP_FLAGS.SYN | TCP_FLAGS.ACK, options: [] });
    expect(findMss(lab.client.at(-1)!)).toBe(536 - 16);
  });

  test('a full-size segment still fits 1500 bytes once tagged', () => {
    const lab = new Lab();
    const { c, s } = lab.handshake();
    // MSS 1444 minus 12 bytes of timestamps: the most a Linux peer sends.
    lab.fromClient({ seq: c, ack: s, payload: new Uint8Array(1432), options: [{ kind: 1, data: new Uint8Array(0) }, { kind: 1, data: new Uint8Array(0) }, { kind: 8, data: new Uint8Array(8) }] });
    expect(lab.wire.at(-1)!.packet.length).toBeLessThanOrEqual(1500);
  });
});

describe('rule 5: short-lived keys', () => {
  test('forged RST and FIN do not make either side drop the key', () => {
    const lab = new Lab();
    const { c, s } = lab.handshake();
    lab.inject(segment('server', { seq: s, ack: c, flags: TCP_FLAGS.RST | TCP_FLAGS.ACK }), 's2c');
    lab.inject(segment('client', { seq: c, ack: s, flags: TCP_FLAGS.RST }), 'c2s');
    lab.inject(segment('client', { seq: c, ack: s, flags: TCP_FLAGS.FIN | TCP_FLAGS.ACK }), 'c2s');
    expect(lab.agent.keyedFlowCount).toBe(1);
    expect(lab.gateway.keyedFlowCount).toBe(1);
    lab.fromClient({ seq: c, ack: s, payload: 'still here' });
    expect(text(decode(lab.server.at(-1)!).tcp.payload)).toBe('still here');
  });

  test('an authenticated RST discards and zeroes the keys on both sides', () => {
    const lab = new Lab();
    const { c, s } = lab.handshake();
    const ciphers = [...lab.agent.debugCiphers(), ...lab.gateway.debugCiphers()];
    lab.fromServer({ seq: s, ack: c, flags: TCP_FLAGS.RST | TCP_FLAGS.ACK });
    expect(lab.client.at(-1) && decode(lab.client.at(-1)!).tcp.flags & TCP_FLAGS.RST).toBeTruthy();
    expect(lab.agent.flowCount + lab.gateway.flowCount).toBe(0);
    expect(ciphers.every((x) => x.keysAreZero())).toBe(true);
  });

  test('after the FIN exchange keys linger, then are zeroed; idle flows expire too', () => {
    const lab = new Lab();
    const { c, s } = lab.handshake();
    const ciphers = [...lab.agent.debugCiphers(), ...lab.gateway.debugCiphers()];
    lab.fromClient({ seq: c, ack: s, flags: TCP_FLAGS.FIN | TCP_FLAGS.ACK });
    lab.fromServer({ seq: s, ack: c + 1, flags: TCP_FLAGS.FIN | TCP_FLAGS.ACK });
    lab.fromClient({ seq: c + 1, ack: s + 1 });
    expect(lab.gateway.keyedFlowCount).toBe(1);
    lab.advance(60_001);
    expect(lab.agent.keyedFlowCount + lab.gateway.keyedFlowCount).toBe(0);
    expect(ciphers.every((x) => x.keysAreZero())).toBe(true);

    const idle = new Lab();
    idle.handshake();
    idle.advance(300_001);
    expect(idle.agent.flowCount + idle.gateway.flowCount).toBe(0);
  });
});

describe('rule 6: bound messages', () => {
  test('a ticket for one flow is refused on another', () => {
    const lab = new Lab();
    const agent = lab.agent;
    const tickets: Uint8Array[] = [];
    const deliver = agent.handleKdMessage.bind(agent);
    agent.handleKdMessage = (connId, message, now) => {
      if (message.type === KdType.Ticket) tickets.push(message.clientTicket);
      deliver(connId, message, now);
    };
    lab.handshake(); // flow A keys normally; its client ticket is recorded
    expect(agent.keyedFlowCount).toBe(1);
    // Flow B starts; a gateway under an attacker's control hands it flow A's ticket.
    agent.handleKdMessage = deliver;
    lab.hold = true;
    lab.fromClient({ seq: 77, flags: TCP_FLAGS.SYN, options: SYN_OPTIONS(), cport: 40001 });
    const flowB = agent.flows(lab.now).find((f) => f.state === 'syn-sent')!;
    const connB = BigInt(`0x${flowB.connId}`);
    const tuple = { clientAddr: CLIENT, clientPort: 40001, serverAddr: SERVER, serverPort: 5432 };
    agent.handleKdMessage(connB, { type: KdType.Hello, connId: connB, gatewayPrincipal: 'gateway@pipeline', tuple, clientIsn: 77, suite: 1, gatewayNonce: new Uint8Array(16) }, lab.now);
    agent.takeActions();
    agent.handleKdMessage(connB, { type: KdType.Ticket, connId: connB, clientTicket: tickets[0]!, gatewayConfirm: new Uint8Array(32) }, lab.now);
    const errors = agent.takeActions().flatMap((a) => (a.kind === 'kd-send' && a.message.type === KdType.Error ? [a.message.code] : []));
    expect(errors).toEqual([KdErrorCode.BindingMismatch]);
    expect(agent.keyedFlowCount).toBe(1); // still only flow A
  });

  test('a hello that does not describe the SYN the agent sent is refused', () => {
    const lab = new Lab();
    lab.hold = true;
    lab.fromClient({ seq: 77, flags: TCP_FLAGS.SYN, options: SYN_OPTIONS() });
    const agent = lab.agent;
    const conn = BigInt(`0x${agent.flows(lab.now)[0]!.connId}`);
    const tuple = { clientAddr: CLIENT, clientPort: 40000, serverAddr: SERVER, serverPort: 5432 };
    agent.handleKdMessage(conn, { type: KdType.Hello, connId: conn, gatewayPrincipal: 'g', tuple, clientIsn: 78, suite: 1, gatewayNonce: new Uint8Array(16) }, lab.now);
    const errors = agent.takeActions().flatMap((a) => (a.kind === 'kd-send' && a.message.type === KdType.Error ? [a.message.code] : []));
    expect(errors).toEqual([KdErrorCode.BindingMismatch]);
  });
});

describe('rule 7: fail closed, pass clean', () => {
  test('when keying fails the client gets a RST and the server never sees the SYN', () => {
    const lab = new Lab();
    const gw = lab.gateway;
    // The agent refuses every hello: as if it were not the flow's agent.
    lab.agent.handleKdMessage = (connId) => {
      gw.handleKdMessage(connId, { type: KdType.Error, connId, code: KdErrorCode.UnknownConnection, reason: 'no' }, lab.now);
    };
    lab.fromClient({ seq: 1, flags: TCP_FLAGS.SYN, options: SYN_OPTIONS() });
    expect(lab.server.length).toBe(0);
    const rst = decode(lab.client.at(-1)!);
    expect(rst.tcp.flags & TCP_FLAGS.RST).toBeTruthy();
    expect(rst.tcp.ack).toBe(2);
    expect(gw.counters.get('refused:agent-unknown-connection')).toBe(1);
  });

  test('keying that never completes times out into a RST', () => {
    const lab = new Lab();
    lab.agent.handleKdMessage = () => undefined; // the agent never answers
    lab.fromClient({ seq: 1, flags: TCP_FLAGS.SYN, options: SYN_OPTIONS() });
    lab.advance(1_600);
    expect(lab.server.length).toBe(0);
    expect(decode(lab.client.at(-1)!).tcp.flags & TCP_FLAGS.RST).toBeTruthy();
    expect(lab.gateway.counters.get('refused:keying-timeout')).toBe(1);
  });

  test('a resent SYN during keying is absorbed; after release it goes on stripped', () => {
    const lab = new Lab();
    const deliver = lab.agent.handleKdMessage.bind(lab.agent);
    const parked: Array<Parameters<typeof deliver>> = [];
    lab.agent.handleKdMessage = (...args) => void parked.push(args); // the agent is slow to answer
    lab.fromClient({ seq: 1, flags: TCP_FLAGS.SYN, options: SYN_OPTIONS() });
    lab.fromClient({ seq: 1, flags: TCP_FLAGS.SYN, options: SYN_OPTIONS() });
    expect(lab.server.length).toBe(0);
    expect(lab.gateway.counters.get('syn-duplicate-absorbed')).toBe(1);
    lab.agent.handleKdMessage = deliver;
    for (const args of parked.splice(0)) lab.agent.handleKdMessage(...args);
    lab.pipeline.tick(lab.now); // carry out the agent's replies
    expect(lab.server.length).toBe(1);
    expect(ours(lab.server[0]!).request).toBeNull();
    lab.fromClient({ seq: 1, flags: TCP_FLAGS.SYN, options: SYN_OPTIONS() });
    expect(lab.server.length).toBe(2);
    expect(Buffer.from(lab.server[1]!)).toEqual(Buffer.from(lab.server[0]!));
  });

  test('require service refuses a SYN without the option; optional passes it byte for byte', () => {
    const strict = new Lab({ serviceMode: 'require' });
    const plain = segment('client', { seq: 1, flags: TCP_FLAGS.SYN, options: SYN_OPTIONS() });
    expect(strict.gateway.handlePacket(plain, 0).kind).toBe('drop');
    expect(strict.gateway.takeActions().some((a) => a.kind === 'originate')).toBe(true);
    const relaxed = new Lab({ serviceMode: 'optional' });
    expect(relaxed.gateway.handlePacket(plain, 0)).toEqual({ kind: 'pass' });
  });

  test('opportunistic destination without a gateway proceeds in plaintext; require resets both ends', () => {
    for (const mode of ['opportunistic', 'require'] as const) {
      const { agent } = createTrio({ backend: nodeBackend, random: seededRandom(mode), protect: [endpoint], agentMode: mode });
      const syn = agent.handlePacket(segment('client', { seq: 1, flags: TCP_FLAGS.SYN, options: SYN_OPTIONS() }), 0);
      expect(syn.kind).toBe('rewrite');
      // No gateway on the path: the server's SYN-ACK comes back without the mark.
      const synAck = segment('server', { seq: 9, ack: 2, flags: TCP_FLAGS.SYN | TCP_FLAGS.ACK, options: SYN_OPTIONS() });
      const verdict = agent.handlePacket(synAck, 0);
      const resets = agent.takeActions().filter((a) => a.kind === 'originate');
      if (mode === 'opportunistic') {
        expect(verdict).toEqual({ kind: 'pass' });
        expect(resets).toEqual([]);
        const data = segment('client', { seq: 2, ack: 10, payload: 'plain is allowed here' });
        expect(agent.handlePacket(data, 0)).toEqual({ kind: 'pass' });
      } else {
        expect(verdict.kind).toBe('drop');
        expect(resets.map((r) => (r.kind === 'originate' ? r.toward : '')).sort()).toEqual(['client', 'server']);
        expect(agent.flowCount).toBe(0);
      }
    }
  });
});

describe('rule 8: bounded resources', () => {
  test('a flood of encryption-requesting SYNs is refused past the keying limit, memory stays bounded', () => {
    const lab = new Lab({ setup: { limits: { maxPendingKeyings: 8, maxFlows: 16 } } });
    const gw = lab.gateway;
    const agentLab = new Lab({ seed: 'flood' });
    let refused = 0;
    for (let i = 0; i < 200; i++) {
      const syn = segment('client', { seq: i, flags: TCP_FLAGS.SYN, options: SYN_OPTIONS() });
      syn[20] = 0x50 + (i >> 8);
      syn[21] = i & 0xff; // distinct client ports
      syn[36] = 0;
      syn[37] = 0;
      const marked = agentLab.agent.handlePacket(syn, 0);
      if (marked.kind !== 'rewrite') throw new Error('agent did not mark');
      if (gw.handlePacket(marked.packet, 0).kind === 'drop') refused++;
    }
    expect(gw.pendingKeyingCount).toBe(8);
    expect(gw.flowCount).toBeLessThanOrEqual(16);
    expect(refused).toBe(192);
    expect(gw.counters.get('limit-keyings')).toBe(192);
  });
});

describe('rule 9: hostile input is normal input', () => {
  test('an ECN SYN (SYN|ECE|CWR) is recognised as a SYN and keyed', () => {
    const lab = new Lab();
    lab.handshake(1000, 5000, TCP_FLAGS.SYN | TCP_FLAGS.ECE | TCP_FLAGS.CWR);
    expect(lab.gateway.counters.get('flows-established')).toBe(1);
    expect(decode(lab.server[0]!).tcp.flags).toBe(TCP_FLAGS.SYN | TCP_FLAGS.ECE | TCP_FLAGS.CWR);
  });

  test('unknown options survive protection in place and order', () => {
    const lab = new Lab();
    const { c, s } = lab.handshake();
    const odd = { kind: 99, data: Uint8Array.of(1, 2, 3, 4) };
    lab.fromClient({ seq: c, ack: s, payload: 'x', options: [odd] });
    const atServer = decode(lab.server.at(-1)!).tcp.options.filter((o) => o.kind !== 0);
    expect(atServer.map((o) => [o.kind, Buffer.from(o.data).toString('hex')])).toEqual([[99, '01020304']]);
  });

  test('garbage packets are counted, never thrown', () => {
    const lab = new Lab();
    for (const junk of [new Uint8Array(0), Uint8Array.of(0x45), new Uint8Array(60).fill(0xff), segment('client', { seq: 1 }).subarray(0, 30)]) {
      expect(() => lab.gateway.handlePacket(junk, 0)).not.toThrow();
      expect(() => lab.agent.handlePacket(junk, 0)).not.toThrow();
    }
    expect(lab.gateway.counters.get('malformed')).toBeGreaterThan(0);
  });
});
