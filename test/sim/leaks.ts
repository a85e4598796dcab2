// Rule 1 detector for the simulation: how many 16-byte runs of the secret streams occur anywhere
// in the wire payloads. Same contract as pipeline/streams.ts plaintextRunsIn (and cross-checked
// against it in sim.test.ts), but with a rolling hash and no global lookups in the loop: under
// jest every `Math.x` lookup goes through the sandbox's global object (~0.2 us each), which makes
// plaintextRunsIn take seconds for the 300 KB streams the simulation moves.
const WINDOW = 16;
const P = 2_147_483_647; // 2^31 - 1: (h + P) * 256 stays an exact double
const B = 256;
let POW = 1; // B^(WINDOW - 1) mod P
for (let i = 0; i < WINDOW - 1; i++) POW = (POW * B) % P;

/** Calls `visit(hash, at)` for every 16-byte window of `b`. */
function eachWindow(b: Uint8Array, visit: (hash: number, at: number) => void): void {
  if (b.length < WINDOW) return;
  let h = 0;
  for (let i = 0; i < WINDOW; i++) h = (h * B + (b[i] as number)) % P;
  visit(h, 0);
  for (let at = 1; at + WINDOW <= b.length; at++) {
    const out = ((b[at - 1] as number) * POW) % P;
    h = (((h - out + P) % P) * B + (b[at + WINDOW - 1] as number)) % P;
    visit(h, at);
  }
}

function sameRun(a: Uint8Array, ao: number, b: Uint8Array, bo: number): boolean {
  for (let i = 0; i < WINDOW; i++) if (a[ao + i] !== b[bo + i]) return false;
  return true;
}

export function plaintextRuns(secrets: Iterable<Uint8Array>, haystack: Iterable<Uint8Array>): number {
  const hay: Uint8Array[] = [];
  // hash -> windows with that hash, as (haystack index, offset) pairs flattened.
  const index = new Map<number, number[]>();
  for (const h of haystack) {
    const k = hay.length;
    hay.push(h);
    eachWindow(h, (hash, at) => {
      const list = index.get(hash);
      if (list === undefined) index.set(hash, [k, at]);
      else list.push(k, at);
    });
  }
  let found = 0;
  for (const s of secrets) {
    eachWindow(s, (hash, at) => {
      const list = index.get(hash);
      if (list === undefined) return;
      for (let i = 0; i < list.length; i += 2) {
        if (sameRun(s, at, hay[list[i] as number] as Uint8Array, list[i + 1] as number)) {
          found++;
          return;
        }
      }
    });
  }
  return found;
}
