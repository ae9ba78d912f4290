/**
 * The audit log of the dashboard's mutating calls, stored with the product under `audit/<id>`
 * (docs/dashboard.md "Audit"): ids sort in time order, and only the newest AUDIT_KEEP are kept.
 */
import type {TopologyStore} from '../coord/topology-store.js'

export const AUDIT_KEEP = 1000

export interface AuditEntry {
  time: string
  /** The token's name ('-' when the call had no valid token). */
  token: string
  client: string
  method: string
  path: string
  args: unknown
  status: number
}

let seq = 0

/** Appends an entry and drops the oldest ones past keep. */
export async function appendAudit(store: TopologyStore, entry: AuditEntry, keep = AUDIT_KEEP): Promise<void> {
  // Time first (fixed width) so that keys sort as the calls happened; pid and a counter keep them unique.
  const id = `${String(Date.now()).padStart(15, '0')}-${process.pid}-${String(seq++ % 1e6).padStart(6, '0')}`
  await store.coord.txn([], [{type: 'put', key: store.keys.audit(id), value: JSON.stringify(entry)}])
  const all = await store.coord.list(store.keys.auditPrefix)
  if (all.length <= keep) return
  const old = all.map((kv) => kv.key).sort().slice(0, all.length - keep)
  await store.coord.txn([], old.map((key) => ({type: 'delete' as const, key})))
}

/** The newest entries first, at most limit. */
export async function readAudit(store: TopologyStore, limit = AUDIT_KEEP): Promise<AuditEntry[]> {
  const all = await store.coord.list(store.keys.auditPrefix)
  all.sort((a, b) => (a.key < b.key ? 1 : a.key > b.key ? -1 : 0))
  return all.slice(0, limit).map((kv) => {
    try {
      return JSON.parse(kv.value) as AuditEntry
    } catch {
      return {time: '?', token: '?', client: '?', method: '?', path: kv.key, args: null, status: 0}
    }
  })
}
