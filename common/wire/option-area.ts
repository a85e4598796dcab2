// Raw TCP option areas as byte strings: where the option list ends (the rest is padding) and
// how to put one back together. Used where options are spliced without decoding them all.
import { type Result, ok, err } from '../result';
import { TCP_OPTIONS_MAX } from './tcp';
import { TCP_OPTION } from './tcp-options';

/** The options area up to its EOL (or up to an option that cannot be walked); the rest is padding. */
export function optionList(area: Uint8Array): Uint8Array {
  return area.subarray(0, optionListEnd(area, 0, area.length));
}

/** optionList for the area [start, end) of `bytes`, without a view: where the list ends. */
export function optionListEnd(bytes: Uint8Array, start: number, end: number): number {
  let i = start;
  while (i < end) {
    const kind = bytes[i] as number;
    if (kind === TCP_OPTION.EOL) break;
    if (kind === TCP_OPTION.NOP) {
      i++;
      continue;
    }
    const len = i + 1 < end ? (bytes[i + 1] as number) : 0;
    if (len < 2 || i + len > end) break;
    i += len;
  }
  return i;
}

/** Concatenates option byte strings and pads with EOL to a multiple of 4 (at most 40 bytes). */
export function assembleOptions(parts: readonly Uint8Array[]): Result<Uint8Array, 'no-option-space'> {
  const len = parts.reduce((n, p) => n + p.length, 0);
  const padded = (len + 3) & ~3;
  if (padded > TCP_OPTIONS_MAX) return err('no-option-space');
  const out = new Uint8Array(padded);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return ok(out);
}
