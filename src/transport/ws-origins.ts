// Which browser pages may open a WebSocket to the node (config wsOrigins). A browser sends the
// page's Origin with every upgrade and lets any page connect anywhere, so without this check any
// web page a local user opens could write to a node on 127.0.0.1. Clients that are not browsers
// send no Origin and are always let in (they are not the threat this addresses; authentication
// is a later issue).
//
// The list (comma-separated): origins as `scheme://host[:port]`, compared without case; `*` for
// any; `self` (the default) for pages from the node's own host: an origin whose host is the
// listener's host, and for a loopback or wildcard listener (127.0.0.1, ::1, localhost, 0.0.0.0,
// ::) the loopback names. A list without `self` does not allow the own host. The Host header is not trusted for this: a DNS-rebinding page controls both it and its
// Origin.

/** How the refusal is reported: HTTP 403 with this code in the body. */
export const ORIGIN_REFUSED = 'ORIGIN_REFUSED';
/** A refused origin is logged for the first and then every this many refusals (a page can retry in a loop). */
export const ORIGIN_LOG_EVERY = 1000;

const LOOPBACK_NAMES: ReadonlySet<string> = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);
const WILDCARD_HOSTS: ReadonlySet<string> = new Set(['0.0.0.0', '::', '[::]', '']);

function hostnameOf(origin: string): string | null {
  try {
    return new URL(origin).hostname.toLowerCase();
  } catch {
    return null;
  }
}

export class OriginPolicy {
  private readonly any: boolean;
  private readonly exact: ReadonlySet<string>;
  private readonly ownHosts: ReadonlySet<string>;

  /** `list`: the wsOrigins value (comma-separated; '' is taken as 'self'); `host`: the address the listener binds. */
  constructor(list: string, host: string) {
    const entries = (list.trim() === '' ? 'self' : list).split(',').map((x) => x.trim().toLowerCase().replace(/\/+$/, '')).filter((x) => x !== '');
    this.any = entries.includes('*');
    this.exact = new Set(entries);
    const h = host.toLowerCase();
    const own = new Set<string>();
    if (entries.includes('self')) {
      if (LOOPBACK_NAMES.has(h) || WILDCARD_HOSTS.has(h) || h.startsWith('127.')) for (const n of LOOPBACK_NAMES) own.add(n);
      if (!WILDCARD_HOSTS.has(h)) own.add(h.includes(':') && !h.startsWith('[') ? `[${h}]` : h);
    }
    this.ownHosts = own;
  }

  /** True when an upgrade carrying `origin` (the header's value; undefined or '' when absent) may proceed. */
  allows(origin: string | undefined): boolean {
    if (origin === undefined || origin === '') return true;
    if (this.any) return true;
    const o = origin.trim().toLowerCase().replace(/\/+$/, '');
    if (this.exact.has(o)) return true;
    if (this.ownHosts.size === 0) return false;
    const name = hostnameOf(o);
    return name !== null && this.ownHosts.has(name);
  }
}
