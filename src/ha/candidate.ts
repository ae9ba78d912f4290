/**
 * Which replica replaces a dead master (docs/agent.md "Failover"), Redis Sentinel's rule: a replica
 * whose link to the master has been down much longer than the master has (it was cut off before,
 * its data is old) is skipped; `replica-priority` 0 means never; then the lowest priority wins, then
 * the highest replication offset (the replica that has applied the most of the master's stream),
 * then the address, so every leader picks the same one.
 */

export interface ReplicaView {
  addr: string
  offset: number
  /** replica-priority (INFO `slave_priority`); Redis's default is 100. */
  priority: number
  /** Seconds since the replica's link to the master went down (INFO `master_link_down_since_seconds`); 0 while up. */
  linkDownSec: number
}

export interface CandidateChoice {
  best: ReplicaView | null
  /** Each skipped replica and why (shown in the failover record). */
  skipped: string[]
}

/** Sentinel's allowance: a link may have been down this many down-after periods before the master's checks failed. */
const LINK_DOWN_FACTOR = 10

export function chooseCandidate(replicas: ReplicaView[], masterDownForMs: number, downAfterMs: number): CandidateChoice {
  const maxLinkDownMs = masterDownForMs + downAfterMs * LINK_DOWN_FACTOR
  const skipped: string[] = []
  const eligible = replicas.filter((r) => {
    if (r.priority === 0) skipped.push(`${r.addr}: replica-priority 0 (never promoted)`)
    else if (r.linkDownSec * 1000 > maxLinkDownMs) skipped.push(`${r.addr}: its link to the master has been down for ${r.linkDownSec} s, longer than the master`)
    else return true
    return false
  })
  eligible.sort((a, b) => a.priority - b.priority || b.offset - a.offset || (a.addr < b.addr ? -1 : a.addr > b.addr ? 1 : 0))
  return {best: eligible[0] ?? null, skipped}
}
