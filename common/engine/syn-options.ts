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
 * Handshake options for a protected flow: the MSS lowered by `overhead` (the bytes our tag option
 * adds to every later segment), or an MSS option added where the segment had none; the TCP Fast
 * Open option removed (SYN data is never carried on a protected flow, and it would take option
 * space the tag needs); `extra` options appended. Everything else stays in place and order.
 */
export function clampMss(area: Uint8Array, overhead: number, ipVersion: 4 | 6, extra: readonly Uint8Array[] = []): Result<Uint8Array, 'no-option-space'> {
  const kept: number[] = [];
  let sawMss = false;
  const list = optionList(area);
  let i = 0;
  while (i < list.length) {
    const kind = list[i] as number;
    if (kind === TCP_OPTION.NOP) {
      kept.push(kind);
      i++;
      continue;
    }
    const len = list[i + 1] as number;
    const option = Array.from(list.subarray(i, i + len));
    if (kind === TCP_OPTION.MSS && len === 4 && !sawMss) {
      const clamped = Math.max((((option[2] as number) << 8) | (option[3] as number)) - overhead, 64);
      option[2] = clamped >>> 8;
      option[3] = clamped & 0xff;
      sawMss = true;
    }
    if (!isFastOpen(option)) kept.push(...option);
    i += len;
  }
  if (!sawMss) {
    const mss = defaultMss(ipVersion) - overhead;
    kept.unshift(TCP_OPTION.MSS, 4, mss >>> 8, mss & 0xff);
  }
  return assembleOptions([Uint8Array.from(kept), ...extra]);
}

/** TCP Fast Open: kind 34 (RFC 7413), or the experimental kind 254 with magic 0xF989. */
function isFastOpen(option: readonly number[]): boolean {
  return option[0] === TCP_OPTION.FAST_OPEN || (option[0] === 254 && option[2] === 0xf9 && option[3] === 0x89);
}

/** The options without the `length` bytes at `offset` (our request option), re-padded. */
export function removeOption(area: Uint8Array, offset: number, length: number): Uint8Array {
  const rest = optionList(area.subarray(offset + length));
  const out = assembleOptions([area.subarray(0, offset), rest]);
  // Removing bytes can only shrink the area, so it always fits.
  return out.ok ? out.value : area;
}
