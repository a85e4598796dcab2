// CIDR ranges for the KDC's per-principal allowed networks (address text itself is parsed by
// common/wire/address.ts). Families never cross: an IPv4 range does not match an IPv4-mapped
// IPv6 address.
import { type Result, ok, err } from '../result';
import { parseIpAddress } from '../wire/address';
import type { IpAddr } from './codec';

export interface Cidr {
  /** Network address with the host bits cleared (4 or 16 bytes). */
  network: IpAddr;
  prefix: number;
}

/** Parses `addr/prefix` (or a bare address, meaning a single host); host bits are cleared. */
export function parseCidr(s: string): Result<Cidr, string> {
  const slash = s.indexOf('/');
  const addrText = slash < 0 ? s : s.slice(0, slash);
  const parsed = parseIpAddress(addrText);
  if (!parsed.ok) return err(`invalid address in CIDR '${s}'`);
  const addr = parsed.value;
  const maxPrefix = addr.length * 8;
  let prefix = maxPrefix;
  if (slash >= 0) {
    const p = s.slice(slash + 1);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > maxPrefix) return err(`invalid prefix length in CIDR '${s}'`);
    prefix = Number(p);
  }
  const network = addr.slice();
  for (let bit = prefix; bit < maxPrefix; bit++) network[bit >> 3] = (network[bit >> 3] as number) & ~(0x80 >> (bit & 7));
  return ok({ network, prefix });
}

/** True when `addr` is inside `cidr` (same family only). */
export function cidrContains(cidr: Cidr, addr: IpAddr): boolean {
  if (addr.length !== cidr.network.length) return false;
  const full = cidr.prefix >> 3;
  for (let i = 0; i < full; i++) if (addr[i] !== cidr.network[i]) return false;
  const rest = cidr.prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return ((addr[full] as number) & mask) === cidr.network[full];
}
