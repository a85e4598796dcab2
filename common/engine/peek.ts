// Addresses of a packet whose IP header could not be fully validated (e.g. truncated by a
// capture's snap length). Enough to tell whether it concerns a protected host, so that such a
// packet is dropped there instead of passing as unprotected plaintext.
export function peekAddresses(packet: Uint8Array): { src: Uint8Array; dst: Uint8Array } | null {
  const version = (packet[0] ?? 0) >> 4;
  if (version === 4 && packet.length >= 20) return { src: packet.subarray(12, 16), dst: packet.subarray(16, 20) };
  if (version === 6 && packet.length >= 40) return { src: packet.subarray(8, 24), dst: packet.subarray(24, 40) };
  return null;
}
