// Idempotency across a KDC crash, on the default (embedded) store: a real `ciphergate kdc`
// process answers, dies by SIGKILL, and the process that replaces it refuses every retry of
// what was answered (replay), where it would otherwise mint a second session key.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { KDC_ERROR_NAMES, KdcType, type KdcMessage } from '../../common/protocol/kdc-messages';
import { DIST_READY, type Lab, RawConn, ask, decodeAnswer, killProcess, makeLab, request, startKdcProcess } from './service.fixture';

const d = DIST_READY ? describe : describe.skip;
if (!DIST_READY) console.warn('dist/ is missing: KDC crash idempotency test skipped; run `npx tsc -p .` first');

const code = (m: KdcMessage): string => (m.type === KdcType.IssueError ? KDC_ERROR_NAMES[m.code] : 'ok');

d('KDC process killed and restarted on the embedded store', () => {
  let lab: Lab;
  const procs: Parameters<typeof killProcess>[0][] = [];
  beforeAll(async () => {
    lab = await makeLab({ kind: 'embedded' });
  });
  afterAll(async () => {
    await Promise.all(procs.map(killProcess));
    await lab?.cleanup();
  });

  test('retries of requests answered before a SIGKILL are refused as replay, never issued a second key', async () => {
    const gw1 = await lab.key('gw1');
    const journal = () => fs.readdirSync(path.join(lab.dir, 'store')).filter((f) => f.endsWith('.ids'));
    expect(journal()).toEqual([]); // kdc-admin, which never issues, writes none
    const one = await startKdcProcess(lab);
    procs.push(one.proc);
    const frames = Array.from({ length: 40 }, () => request(gw1, 'alice'));
    const c = await RawConn.open(one.endpoint);
    c.send(...frames);
    const answers = await c.read(frames.length);
    c.close();
    expect(answers.map((a) => code(decodeAnswer(a)))).toEqual(Array(frames.length).fill('ok'));
    await killProcess(one.proc);
    expect(journal()).toHaveLength(1);

    const two = await startKdcProcess(lab);
    procs.push(two.proc);
    for (const f of frames) {
      const m = await ask(two.endpoint, f);
      expect(code(m)).toBe('replay');
      expect(m.type === KdcType.IssueError && m.reason).toBe('request id already answered; the answer is no longer held');
    }
    expect(code(await ask(two.endpoint, request(gw1, 'alice')))).toBe('ok');
    await killProcess(two.proc);

    // The checks above can fail: a KDC without the journal answers the same retry with new tickets.
    const forgetful = await startKdcProcess(lab, (cfg) => ({ ...cfg, store: { embedded: { ...(cfg.store as { embedded: object }).embedded, issuedJournal: false } } }));
    procs.push(forgetful.proc);
    const again = await ask(forgetful.endpoint, frames[0]!);
    expect(code(again)).toBe('ok');
    const first = decodeAnswer(answers[0]!);
    if (again.type !== KdcType.IssueResponse || first.type !== KdcType.IssueResponse) throw new Error('expected two ISSUE_RESPONSEs');
    expect(Buffer.from(again.gatewayTicket).equals(Buffer.from(first.gatewayTicket))).toBe(false);
  }, 60_000);
});
