// The meta group (issue 15): the Raft group that holds the key map (meta-state-machine.ts). Its
// id is reserved, above every id a data group may take (config `groups` is at most 1,000,000,
// and addGroup refuses it with RESERVED_GROUP), and below GROUP_BROADCAST (0xffffffff), which
// peer links use for coalesced heartbeats. It lives on a shard like every group (group % shards)
// and is hosted by the configured peers with the lowest ids, at most META_VOTERS_MAX of them.

/** The meta group's id; no data group can take it. */
export const META_GROUP = 0xfffffffe;

/** How many nodes host the meta group: three, or all of them when the cluster has fewer. */
export const META_VOTERS_MAX = 3;

/** The meta group's voters in a cluster of these node ids: the lowest ones, ascending. */
export function metaVoters(nodeIds: readonly number[]): number[] {
  return [...nodeIds].sort((a, b) => a - b).slice(0, META_VOTERS_MAX);
}
