// Files holding secrets: the exported key file of an agent or gateway principal, and the
// helpers the master-key stash (kdc/master-key.ts) shares: create with mode 0600 (never chmod
// afterwards), refuse to read a file that group or others can read.
//
// Key file (JSON):
//   { "format": "ciphergate-key/1", "principal": "gw1.example", "kvno": 3,
//     "key": "<64 hex>", "kdc": ["10.0.0.5:7391"], "exportedAt": "2026-01-01T00:00:00.000Z" }
// `kdc` and `exportedAt` are optional.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseHostPort } from './config';
import { principalNameProblem } from './principals';

export const KEY_FILE_FORMAT = 'ciphergate-key/1';
export const MAX_KVNO = 0xffff_ffff;

export interface KeyFile {
  principal: string;
  kvno: number;
  /** 32 bytes. */
  key: Uint8Array;
  /** KDC endpoints as `host:port` (`[v6]:port`). */
  kdc: string[];
  exportedAt?: string;
}

/** A secret file that is missing, unreadable, too open or malformed. The message names the file and the problem. */
export class SecretFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SecretFileError';
  }
}

/** Reads a secret file, refusing anything but a regular file that only its owner can read. */
export function readPrivateFile(file: string, what: string): Buffer {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new SecretFileError(`${what} ${file}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (e as Error).message}`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new SecretFileError(`${what} ${file}: not a regular file`);
    const mode = st.mode & 0o777;
    if (mode & 0o077) {
      throw new SecretFileError(`${what} ${file}: mode ${mode.toString(8).padStart(4, '0')} lets group or others read it; run chmod 600 ${file}`);
    }
    if (st.size > 64 * 1024) throw new SecretFileError(`${what} ${file}: ${st.size} bytes, too large for a key file`);
    return fs.readFileSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Writes a secret file created with mode 0600: a temp file in the same directory (O_EXCL, 0600),
 * fsynced, then published. Without `overwrite` an existing file is an error and is left alone.
 */
export function writePrivateFile(file: string, data: Uint8Array | string, what: string, overwrite = false): void {
  const dir = path.dirname(path.resolve(file));
  const tmp = path.join(dir, `.${path.basename(file)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  let fd: number;
  try {
    fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
  } catch (e) {
    throw new SecretFileError(`${what} ${file}: cannot create a file in ${dir}: ${(e as Error).message}`);
  }
  try {
    try {
      fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    if (overwrite) {
      fs.renameSync(tmp, file);
    } else {
      try {
        fs.linkSync(tmp, file); // atomic "create if absent"
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new SecretFileError(`${what} ${file}: already exists (not overwritten)`);
        throw new SecretFileError(`${what} ${file}: ${(e as Error).message}`);
      }
    }
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  try {
    const dfd = fs.openSync(dir, 'r');
    fs.fsyncSync(dfd);
    fs.closeSync(dfd);
  } catch {
    // directory fsync is best effort on filesystems that refuse it
  }
}

export function encodeKeyFile(k: KeyFile): string {
  const out: Record<string, unknown> = {
    format: KEY_FILE_FORMAT,
    principal: k.principal,
    kvno: k.kvno,
    key: Buffer.from(k.key).toString('hex'),
  };
  if (k.kdc.length > 0) out.kdc = k.kdc;
  if (k.exportedAt !== undefined) out.exportedAt = k.exportedAt;
  return JSON.stringify(out, null, 2) + '\n';
}

/** Parses and validates key file text; errors name the file and the bad field. */
export function parseKeyFile(text: string, where: string): KeyFile {
  const bad = (field: string, problem: string) => new SecretFileError(`key file ${where}: ${field}: ${problem}`);
  let x: unknown;
  try {
    x = JSON.parse(text);
  } catch (e) {
    throw new SecretFileError(`key file ${where}: not JSON (${(e as Error).message})`);
  }
  if (typeof x !== 'object' || x === null || Array.isArray(x)) throw new SecretFileError(`key file ${where}: expected a JSON object`);
  const o = x as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!['format', 'principal', 'kvno', 'key', 'kdc', 'exportedAt'].includes(k)) throw bad(k, 'unknown field');
  }
  if (o.format !== KEY_FILE_FORMAT) throw bad('format', `expected "${KEY_FILE_FORMAT}"`);
  if (typeof o.principal !== 'string') throw bad('principal', 'expected a string');
  const nameProblem = principalNameProblem(o.principal);
  if (nameProblem) throw bad('principal', nameProblem);
  if (!Number.isInteger(o.kvno) || (o.kvno as number) < 1 || (o.kvno as number) > MAX_KVNO) throw bad('kvno', `expected integer 1..${MAX_KVNO}`);
  if (typeof o.key !== 'string' || !/^[0-9a-fA-F]{64}$/.test(o.key)) throw bad('key', 'expected 64 hex digits (32 bytes)');
  const kdc: string[] = [];
  if (o.kdc !== undefined) {
    if (!Array.isArray(o.kdc)) throw bad('kdc', 'expected an array of "host:port"');
    o.kdc.forEach((e, i) => {
      const hp = typeof e === 'string' ? parseHostPort(e) : 'expected "host:port"';
      if (typeof hp === 'string') throw bad(`kdc[${i}]`, hp);
      kdc.push(e as string);
    });
  }
  if (o.exportedAt !== undefined && typeof o.exportedAt !== 'string') throw bad('exportedAt', 'expected a string');
  return { principal: o.principal, kvno: o.kvno as number, key: new Uint8Array(Buffer.from(o.key, 'hex')), kdc, ...(o.exportedAt !== undefined ? { exportedAt: o.exportedAt as string } : {}) };
}

/** Loads an agent's or gateway's key file: private file, then parseKeyFile. */
export function loadKeyFile(file: string): KeyFile {
  const buf = readPrivateFile(file, 'key file');
  try {
    return parseKeyFile(buf.toString('utf8'), file);
  } finally {
    buf.fill(0);
  }
}

/** Writes a key file with mode 0600. */
export function writeKeyFile(file: string, k: KeyFile, overwrite = false): void {
  writePrivateFile(file, encodeKeyFile(k), 'key file', overwrite);
}
