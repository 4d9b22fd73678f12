// ICE candidate and SDP filtering for loopback meshes: when every rank runs on one machine,
// only host candidates on 127.0.0.1 are offered or accepted, so no connectivity check and no
// byte of a data channel leaves the machine (and no interface address leaks into signalling).
//
// A candidate line is `candidate:<foundation> <component> <transport> <priority> <address>
// <port> typ <type> ...` (RFC 8839), in an SDP `a=` line or alone (node-datachannel prefixes
// the lone form with `a=` too).

export const LOOPBACK_ADDRESS = '127.0.0.1';

export interface ParsedCandidate {
  foundation: string;
  component: string;
  transport: string;
  priority: number;
  address: string;
  port: number;
  type: string;
}

/** Parses a candidate attribute (with or without `a=`); undefined if it is not one. */
export function parseCandidate(line: string): ParsedCandidate | undefined {
  const m = /^(?:a=)?candidate:(\S+) (\S+) (\S+) (\d+) (\S+) (\d+) typ (\S+)/i.exec(line.trim());
  if (!m) return undefined;
  return {
    foundation: m[1]!, component: m[2]!, transport: m[3]!.toLowerCase(), priority: Number(m[4]), address: m[5]!, port: Number(m[6]), type: m[7]!.toLowerCase(),
  };
}

/** A host candidate on 127.0.0.1 (UDP or TCP). */
export function isLoopbackHostCandidate(line: string): boolean {
  const c = parseCandidate(line);
  return c !== undefined && c.address === LOOPBACK_ADDRESS && c.type === 'host';
}

/** The candidate attribute without a leading `a=` (the W3C form both implementations accept). */
export function normalizeCandidate(line: string): string {
  return line.trim().replace(/^a=/, '');
}

/**
 * An SDP with every `a=candidate` line that is not a 127.0.0.1 host candidate removed, and
 * connection (`c=`) lines that name another address set to 0.0.0.0 (no default address).
 */
export function loopbackSdp(sdp: string): string {
  const eol = sdp.includes('\r\n') ? '\r\n' : '\n';
  const out: string[] = [];
  for (const line of sdp.split(/\r?\n/)) {
    if (/^a=candidate:/i.test(line) && !isLoopbackHostCandidate(line)) continue;
    const c = /^c=IN (IP4|IP6) (\S+)/.exec(line);
    if (c && c[2] !== '0.0.0.0' && c[2] !== LOOPBACK_ADDRESS) {
      out.push('c=IN IP4 0.0.0.0');
      continue;
    }
    out.push(line);
  }
  return out.join(eol);
}

/** Addresses of the `a=candidate` lines of an SDP (for checks and tests). */
export function sdpCandidateAddresses(sdp: string): string[] {
  return sdp.split(/\r?\n/).flatMap((l) => {
    const c = /^a=candidate:/i.test(l) ? parseCandidate(l) : undefined;
    return c ? [c.address] : [];
  });
}
