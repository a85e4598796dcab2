// Boundary checks shared by both backends and the keystream. Wrong sizes here are programming
// errors (callers validate wire input first), so these throw TypeError/RangeError with the
// operation and argument named.

export const KEY_BYTES = 32;
export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;
export const BLOCK_BYTES = 64;
/** ChaCha20 has a 32-bit block counter: 2^32 blocks per (key, nonce). */
export const COUNTER_SPACE = 2 ** 32;
/** RFC 5869: L <= 255 * HashLen. */
export const HKDF_MAX_LENGTH = 255 * 32;

export function checkBytes(op: string, name: string, value: unknown, length?: number): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw new TypeError(`${op}: ${name} must be a Uint8Array, got ${describe(value)}`);
  }
  if (length !== undefined && value.length !== length) {
    throw new RangeError(`${op}: ${name} must be ${length} bytes, got ${value.length}`);
  }
}

export function checkKeyNonce(op: string, key: unknown, nonce: unknown): void {
  checkBytes(op, 'key', key, KEY_BYTES);
  checkBytes(op, 'nonce', nonce, NONCE_BYTES);
}

/** counter is a 32-bit block index, and the blocks `input` needs must not run past 2^32. */
export function checkCounter(op: string, counter: number, inputLength: number): void {
  if (!Number.isInteger(counter) || counter < 0 || counter >= COUNTER_SPACE) {
    throw new RangeError(`${op}: counter must be an integer in [0, 2^32), got ${counter}`);
  }
  const blocks = Math.ceil(inputLength / BLOCK_BYTES);
  if (counter + blocks > COUNTER_SPACE) {
    throw new RangeError(`${op}: ${blocks} blocks from counter ${counter} pass the 2^32 block limit`);
  }
}

/**
 * `output` must have the input's length and be either exactly the input's bytes (in place) or
 * disjoint from them: a shifted overlap would read bytes already written.
 */
export function checkOutput(op: string, input: Uint8Array, output: unknown): asserts output is Uint8Array {
  checkBytes(op, 'output', output, input.length);
  if (output.buffer !== input.buffer || output.byteOffset === input.byteOffset || input.length === 0) return;
  const a = input.byteOffset;
  const b = output.byteOffset;
  if (a < b + output.length && b < a + input.length) {
    throw new RangeError(`${op}: output partially overlaps input (offsets ${a} and ${b}); use the same bytes or disjoint ones`);
  }
}

/** Every argument of a chacha20Xor call (both backends take the same ones). */
export function checkChachaXorArgs(op: string, key: unknown, nonce: unknown, counter: number, input: unknown, output: unknown): asserts input is Uint8Array {
  checkKeyNonce(op, key, nonce);
  checkBytes(op, 'input', input);
  checkCounter(op, counter, input.length);
  if (output !== undefined) checkOutput(op, input, output);
}

export function checkHkdfLength(op: string, length: number): void {
  if (!Number.isInteger(length) || length < 1 || length > HKDF_MAX_LENGTH) {
    throw new RangeError(`${op}: length must be an integer in [1, ${HKDF_MAX_LENGTH}], got ${length}`);
  }
}

/** A truncated MAC of 1..32 bytes written inside `out`. */
export function checkMacOutput(op: string, out: unknown, at: number, length: number): asserts out is Uint8Array {
  checkBytes(op, 'out', out);
  if (!Number.isInteger(length) || length < 1 || length > 32) throw new RangeError(`${op}: length must be an integer in [1, 32], got ${length}`);
  if (!Number.isInteger(at) || at < 0 || at + length > out.length) {
    throw new RangeError(`${op}: ${length} bytes at ${at} do not fit in a ${out.length}-byte output`);
  }
}

export function checkMessageLength(op: string, length: number, max: number): void {
  if (!Number.isInteger(length) || length < 0 || length > max) throw new RangeError(`${op}: message length must be an integer in [0, ${max}], got ${length}`);
}

export function checkParts(op: string, parts: readonly unknown[]): void {
  for (let i = 0; i < parts.length; i++) checkBytes(op, `part ${i}`, parts[i]);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'object') return (value as object).constructor?.name ?? 'object';
  return typeof value;
}
