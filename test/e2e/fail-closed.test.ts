// Fail closed (rule 7, section 2 step 8): whatever breaks before cipher sync (the KDC or its
// Redis down, the agent gone, an unknown or disabled client principal, a policy denial), a
// client that asked for encryption is refused at once (RST: curl exit 7, or 56 if reset later)
// within 2 s, and not one byte of its request crosses the wire or reaches the server.
// Each case restores the lab and shows a connection works again, so the next case's refusal
// has no other cause. Redis goes last: the lab's Redis keeps the store in memory only.
import type { CiphergateLab } from '../../lab/topology';
import {
  type Attempt,
  anyPayloadHolds,
  counter,
  daemonStatus,
  describeE2E,
  payloadBytes,
  sleep,
  tcpSegments,
  timedCurl,
  touchesPort,
  uniqueSeed,
  useLab,
  url,
} from './helpers';

/** The KDC trusts a cached principal or policy for at most this long (kdc/store/watch.ts). */
const KDC_STALENESS_MS = 1000;
const REFUSED = [7, 56];

describeE2E('fail closed (router mode)', () => {
  let lab: CiphergateLab;

  useLab('failclosed', { mode: 'router', gatewayTimers: { lingerMs: 1000 }, agentTimers: { lingerMs: 1000 } }, (l) => {
    lab = l;
  });

  /** One refused attempt with a unique marker in the request, captured on both links. */
  async function refusedAttempt(tag: string): Promise<{ attempt: Attempt; wireSyns: number; serverSyns: number }> {
    const marker = uniqueSeed(`fc-${tag}`);
    const caps = await lab.startCaptures(`fc-${tag}`);
    let attempt: Attempt;
    try {
      attempt = await timedCurl(lab, url(lab.server.v4, 80, `/bytes/64?seed=${marker}`), ['-H', `X-Marker: ${marker}`], 8);
    } finally {
      await lab.stopCaptures();
    }
    const wire = tcpSegments(caps.wire);
    const server = tcpSegments(caps.server);
    const diagnosis = `${tag}: curl exit ${attempt.code} after ${attempt.ms} ms: ${attempt.stderr.trim()}`;
    // Refused or reset, fast: the client is not left waiting for SYN retransmissions.
    expect({ diagnosis, refused: REFUSED.includes(attempt.code ?? -1) }).toEqual({ diagnosis, refused: true });
    expect({ diagnosis, fast: attempt.ms < 2000 }).toEqual({ diagnosis, fast: true });
    // Nothing of the request on the wire (any port), no payload of port 80 on either link.
    expect(anyPayloadHolds(wire, marker)).toBe(false);
    expect(payloadBytes(wire.filter(touchesPort(80)))).toBe(0);
    expect(anyPayloadHolds(server, marker)).toBe(false);
    expect(payloadBytes(server.filter(touchesPort(80)))).toBe(0);
    const syn = (s: { tcp: { flags: number; dstPort: number } }) => s.tcp.dstPort === 80 && (s.tcp.flags & 0x12) === 0x02;
    return { attempt, wireSyns: wire.filter(syn).length, serverSyns: server.filter(syn).length };
  }

  async function works(): Promise<void> {
    const r = await timedCurl(lab, url(lab.server.v4, 80, '/'), ['--fail']);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
  }

  test('baseline: a protected connection works', works);

  test('KDC stopped: refused within 2 s, nothing crosses', async () => {
    const before = await daemonStatus(lab, 'gateway');
    await lab.stop('kdc');
    try {
      const r = await refusedAttempt('kdc');
      // The held SYN never reached the server.
      expect(r.serverSyns).toBe(0);
    } finally {
      await lab.startKdc();
    }
    const after = await daemonStatus(lab, 'gateway');
    expect(counter(after, 'refused:kdc-unreachable')).toBeGreaterThan(counter(before, 'refused:kdc-unreachable'));
    await works();
  }, 60_000);

  test('client principal disabled: refused within 2 s, nothing crosses', async () => {
    await lab.kdcAdmin(['principal', 'disable', 'client@lab'], true);
    await sleep(KDC_STALENESS_MS + 500);
    try {
      expect((await refusedAttempt('disabled')).serverSyns).toBe(0);
    } finally {
      await lab.kdcAdmin(['principal', 'enable', 'client@lab'], true);
    }
    expect(counter(await daemonStatus(lab, 'gateway'), 'refused:kdc-principal-disabled')).toBeGreaterThan(0);
    await sleep(KDC_STALENESS_MS + 500);
    await works();
  }, 60_000);

  test('policy denial (policy removed): refused within 2 s, nothing crosses', async () => {
    await lab.kdcAdmin(['policy', 'remove', 'lab'], true);
    await sleep(KDC_STALENESS_MS + 500);
    try {
      expect((await refusedAttempt('policy')).serverSyns).toBe(0);
    } finally {
      await lab.kdcAdmin(['policy', 'add', '--client', 'group:lab-clients', '--gateway', 'gateway@lab', '--service', '*', '--id', 'lab'], true);
    }
    expect(counter(await daemonStatus(lab, 'gateway'), 'refused:kdc-policy-denied')).toBeGreaterThan(0);
    await sleep(KDC_STALENESS_MS + 500);
    await works();
  }, 60_000);

  test('unknown client principal (deleted; the agent still has its key file): refused within 2 s', async () => {
    await lab.kdcAdmin(['principal', 'delete', 'client@lab'], true);
    await sleep(KDC_STALENESS_MS + 500);
    expect((await refusedAttempt('unknown')).serverSyns).toBe(0);
    expect(counter(await daemonStatus(lab, 'gateway'), 'refused:kdc-unknown-principal')).toBeGreaterThan(0);
    // Back: a new key for client@lab, exported to the agent, which restarts with it.
    await lab.kdcAdmin(['principal', 'add', 'client@lab', '--group', 'lab-clients'], true);
    await lab.kdcAdmin(['principal', 'export', 'client@lab', '--out', `${lab.dir}/agent.key`, '--force'], true);
    await lab.stop('agent');
    await lab.startAgent();
    await sleep(KDC_STALENESS_MS + 500);
    await works();
  }, 90_000);

  const start = (role: 'gateway' | 'agent') => (role === 'gateway' ? lab.startGateway() : lab.startAgent());

  test.each(['agent', 'gateway'] as const)('%s stopped (SIGTERM): its guard rules refuse within 2 s, nothing crosses', async (role) => {
    await lab.stop(role);
    try {
      const r = await refusedAttempt(role);
      expect(r.serverSyns).toBe(0);
    } finally {
      await start(role);
    }
    await works();
  }, 90_000);

  // A killed daemon cannot swap its queue rules for its stopped rules: until systemd's
  // ExecStopPost= (`--closed-rules`) does, SYNs wait on a queue nobody reads. Both halves are
  // checked, so the test shows what the ExecStopPost= line is for.
  test.each(['gateway', 'agent'] as const)('%s killed (SIGKILL): slow until `--closed-rules`, then refused within 2 s', async (role) => {
    await lab.stop(role, 'SIGKILL');
    try {
      const hung = await timedCurl(lab, url(lab.server.v4, 80, '/'), [], 2);
      expect({ code: hung.code, ms: hung.ms >= 1900 }).toEqual({ code: 28, ms: true }); // curl: timed out
      await lab.installClosedRules(role);
      const r = await refusedAttempt(`${role}-killed`);
      expect(r.serverSyns).toBe(0);
    } finally {
      await start(role);
    }
    await works();
  }, 90_000);

  test('Redis (the KDC store) stopped: refused within 2 s, nothing crosses', async () => {
    await lab.stop('redis');
    // Past the staleness bound, the KDC must read the store, which is gone.
    await sleep(KDC_STALENESS_MS + 500);
    const before = await daemonStatus(lab, 'gateway');
    for (const attempt of ['redis-1', 'redis-2']) expect((await refusedAttempt(attempt)).serverSyns).toBe(0);
    const after = await daemonStatus(lab, 'gateway');
    expect(counter(after, 'refused') - counter(before, 'refused')).toBe(2);
  }, 90_000);
});
