// EDNS Client Subnet (RFC 7871) read as the client's identity: what a forwarder such as
// CoreDNS (`rewrite edns0 subnet set 32 128`) puts in each query to name the client it
// forwards for. Only ever read for sources the config trusts (`ecs_client.from`).
import { formatIPv6 } from './proxy-v2.js';

export const OPTION_ECS = 8;
/** The query carries an ECS option that RFC 7871 §7.1.1 says to answer with FORMERR. */
export const ECS_MALFORMED = -1;

const FAMILY_IPV4 = 1;
const FAMILY_IPV6 = 2;
const OPT_FIXED_SIZE = 11;

const v6Scratch = Buffer.alloc(16);

/**
 * The client an ECS option in the OPT record at `optStart` names: the network address of
 * its source prefix (`192.0.2.0` for 192.0.2.0/24), as text in the form Node gives socket
 * addresses. null when the query has no ECS option or its source prefix is 0 (the forwarder
 * names nobody: RFC 7871 §7.1.2's opt-out). ECS_MALFORMED for an unknown family, a prefix
 * longer than the family allows, an address whose length does not match the prefix, bits
 * set past the prefix, or two ECS options.
 */
export function ecsClient(msg: Buffer, optStart: number): string | null | typeof ECS_MALFORMED {
  if (optStart < 0 || optStart + OPT_FIXED_SIZE > msg.length) return null;
  const rdStart = optStart + OPT_FIXED_SIZE;
  const rdEnd = Math.min(msg.length, rdStart + ((msg[optStart + 9] << 8) | msg[optStart + 10]));
  let found: string | null | typeof ECS_MALFORMED = null;
  let seen = false;
  for (let at = rdStart; at + 4 <= rdEnd; ) {
    const code = (msg[at] << 8) | msg[at + 1];
    const length = (msg[at + 2] << 8) | msg[at + 3];
    const data = at + 4;
    if (data + length > rdEnd) return ECS_MALFORMED;
    if (code === OPTION_ECS) {
      if (seen) return ECS_MALFORMED;
      seen = true;
      found = parseEcs(msg, data, length);
      if (found === ECS_MALFORMED) return found;
    }
    at = data + length;
  }
  return found;
}

function parseEcs(msg: Buffer, at: number, length: number): string | null | typeof ECS_MALFORMED {
  if (length < 4) return ECS_MALFORMED;
  const family = (msg[at] << 8) | msg[at + 1];
  const sourcePrefix = msg[at + 2];
  const maxPrefix = family === FAMILY_IPV4 ? 32 : family === FAMILY_IPV6 ? 128 : -1;
  if (maxPrefix < 0 || sourcePrefix > maxPrefix) return ECS_MALFORMED;
  const addressBytes = length - 4;
  if (addressBytes !== Math.ceil(sourcePrefix / 8)) return ECS_MALFORMED;
  const address = at + 4;
  const spareBits = addressBytes * 8 - sourcePrefix;
  if (addressBytes > 0 && (msg[address + addressBytes - 1] & ((1 << spareBits) - 1)) !== 0) {
    return ECS_MALFORMED;
  }
  if (sourcePrefix === 0) return null;
  if (family === FAMILY_IPV4) {
    const b = (i: number) => (i < addressBytes ? msg[address + i] : 0);
    return `${b(0)}.${b(1)}.${b(2)}.${b(3)}`;
  }
  v6Scratch.fill(0);
  msg.copy(v6Scratch, 0, address, address + addressBytes);
  return formatIPv6(v6Scratch, 0);
}
