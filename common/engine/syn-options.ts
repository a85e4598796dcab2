// Option edits on handshake segments: MSS clamping (rule 4), adding the encryption request to the
// SYN and stripping it again. Every other option is kept in place and order (rule 9).
import type { Result } from '../result';
import { assembleOptions, optionList } from '../wire/option-area';
import { TCP_OPTION } from '../wire/tcp-options';

/** RFC 9293 3.7.1: a SYN without an MSS option means 536 (IPv4) or 1220 (IPv6). */
export function defaultMss(ipVersion: 4 | 6): number {
  return ipVersion === 4 ? 536 : 1220;
}

/**
 * The options with the MSS lowered by `overhead` (the bytes our tag option adds to every later
 * segment), or an MSS option added where the segment had none.
 */
export function clampMss(area: Uint8Array, overhead: number, ipVersion: 4 | 6, extra: readonly Uint8Array[] = []): Result<Uint8Array, 'no-option-space'> {
  const list = optionList(area).slice();
  let i = 0;
  while (i < list.length) {
    const kind = list[i] as number;
    if (kind === TCP_OPTION.NOP) {
      i++;
      continue;
    }
    const len = list[i + 1] as number;
    if (kind === TCP_OPTION.MSS && len === 4) {
      const mss = ((list[i + 2] as number) << 8) | (list[i + 3] as number);
      const clamped = Math.max(mss - overhead, 64);
      list[i + 2] = clamped >>> 8;
      list[i + 3] = clamped & 0xff;
      return assembleOptions([list, ...extra]);
    }
    i += len;
  }
  const mss = defaultMss(ipVersion) - overhead;
  return assembleOptions([Uint8Array.of(TCP_OPTION.MSS, 4, mss >>> 8, mss & 0xff), list, ...extra]);
}

/** The options without the `length` bytes at `offset` (our request option), re-padded. */
export function removeOption(area: Uint8Array, offset: number, length: number): Uint8Array {
  const rest = optionList(area.subarray(offset + length));
  const out = assembleOptions([area.subarray(0, offset), rest]);
  // Removing bytes can only shrink the area, so it always fits.
  return out.ok ? out.value : area;
}
