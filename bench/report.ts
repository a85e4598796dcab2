// Shared output of every bench: where results go, what machine they came from, the JSON files
// (one per run, dated, plus <bench>-latest.json) and a plain-text table for people.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';

export interface MachineInfo {
  /** process.version, e.g. "v20.19.2". */
  node: string;
  /** os.cpus()[0].model, or "unknown". */
  cpu: string;
}

export function machineInfo(): MachineInfo {
  return { node: process.version, cpu: cpus()[0]?.model.trim() ?? 'unknown' };
}

/**
 * bench/results of the project: found by walking up from this file to the ciphergate
 * package.json, so it is the same from sources and from dist/; the working directory otherwise.
 */
export function defaultResultsDir(): string {
  for (let dir = __dirname; ; dir = dirname(dir)) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && isCiphergate(pkg)) return join(dir, 'bench', 'results');
    if (dirname(dir) === dir) return join(process.cwd(), 'bench', 'results');
  }
}

function isCiphergate(pkgPath: string): boolean {
  try {
    return (JSON.parse(readFileSync(pkgPath, 'utf8')) as { name?: unknown }).name === 'ciphergate';
  } catch {
    return false;
  }
}

/** "2026-11-21T10-48-32Z": an ISO instant that is a valid file name everywhere (no colons). */
export function fileStamp(date: Date): string {
  return date.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
}

/**
 * Writes `result` as DIR/<bench>-<stamp>.json and DIR/<bench>-latest.json (2-space JSON, one
 * trailing newline). Returns both paths.
 */
export function writeResult(dir: string, bench: string, date: Date, result: unknown): { dated: string; latest: string } {
  mkdirSync(dir, { recursive: true });
  const text = `${JSON.stringify(result, null, 2)}\n`;
  const dated = join(dir, `${bench}-${fileStamp(date)}.json`);
  const latest = join(dir, `${bench}-latest.json`);
  writeFileSync(dated, text);
  writeFileSync(latest, text);
  return { dated, latest };
}

export type Align = 'left' | 'right';

export interface Column<R> {
  title: string;
  align?: Align;
  cell(row: R): string;
}

/** A plain-text table: a header line, a rule, one line per row; columns padded to fit. */
export function formatTable<R>(columns: readonly Column<R>[], rows: readonly R[]): string {
  const cells = rows.map((row) => columns.map((c) => c.cell(row)));
  const widths = columns.map((c, i) => Math.max(c.title.length, ...cells.map((r) => (r[i] as string).length)));
  const line = (values: readonly string[]): string =>
    values
      .map((v, i) => (columns[i]?.align === 'right' ? v.padStart(widths[i] as number) : v.padEnd(widths[i] as number)))
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.title)), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)].join('\n');
}

/** 1234567.8 -> "1,234,568"; fractional values below 100 keep `digits` decimals. */
export function formatNumber(value: number, digits = 2): string {
  if (!Number.isFinite(value)) return String(value);
  if (Math.abs(value) >= 100) return Math.round(value).toLocaleString('en-US');
  return value.toFixed(digits);
}
