import type {RoutingTable} from './routing.js'

/**
 * The proxy's SCAN cursor (docs/proxy-fanout.md, "Cursor encoding"). One decimal number:
 *
 *   cursor = ((serverCursor * 4096 + epoch % 4096) * 65536) + position
 *
 * position is 1 + the index of the group in the pass order (scanOrder), 0 only in cursor 0; epoch is
 * the topology epoch the pass started under; serverCursor is that group's own SCAN cursor. The epoch
 * part makes a cursor from an older topology restart the pass (its group order may have changed).
 */
export interface ScanPosition {
  /** Index into scanOrder(table). */
  index: number
  /** The group's server cursor (decimal text, as the server gave it). */
  serverCursor: string
}

const EPOCH_SPAN = 4096n
const POSITION_SPAN = 65536n
export const MAX_SCAN_GROUPS = Number(POSITION_SPAN) - 1

/** The cursor text for a position, or '0' when the scan is over. */
export function encodeScanCursor(pos: ScanPosition | null, epoch: number): string {
  if (!pos) return '0'
  const c = (BigInt(pos.serverCursor) * EPOCH_SPAN + (BigInt(epoch) % EPOCH_SPAN)) * POSITION_SPAN + BigInt(pos.index + 1)
  return c.toString()
}

/**
 * Reads a client's cursor: a position to continue from (a fresh pass for 0 or for a cursor of an
 * older epoch), or null when the text is not a cursor at all (Redis: "ERR invalid cursor").
 */
export function decodeScanCursor(text: string, epoch: number, groups: number): ScanPosition | null {
  if (!/^\d{1,40}$/.test(text)) return null
  const c = BigInt(text)
  const start = {index: 0, serverCursor: '0'}
  if (c === 0n) return start
  const index = Number(c % POSITION_SPAN) - 1
  const rest = c / POSITION_SPAN
  if (rest % EPOCH_SPAN !== BigInt(epoch) % EPOCH_SPAN || index < 0 || index >= groups) return start
  return {index, serverCursor: (rest / EPOCH_SPAN).toString()}
}

/**
 * The groups of a pass in the order they are scanned: each migration's source before its target, so a
 * key moved during the pass is either still on the source when the source is scanned or already on the
 * target before the target's scan starts (docs/proxy-fanout.md, "Guarantees"). Ties by group id; a
 * cycle of migrations (A to B and B to A at once) falls back to group id order for the rest.
 */
export function scanOrder(table: RoutingTable): {id: number; master: string}[] {
  const groups = table.groups.filter((g) => g.master)
  const before = new Map<number, Set<number>>() // target -> sources
  for (const s of table.slots) {
    if (s.state !== 'migrating' || !s.fromGroup || s.fromGroup === s.group) continue
    let set = before.get(s.group)
    if (!set) before.set(s.group, (set = new Set()))
    set.add(s.fromGroup)
  }
  const out: {id: number; master: string}[] = []
  const left = [...groups].sort((a, b) => a.id - b.id)
  while (left.length) {
    const done = new Set(out.map((g) => g.id))
    const ready = left.findIndex((g) => [...(before.get(g.id) ?? [])].every((src) => done.has(src) || !left.some((l) => l.id === src)))
    out.push(left.splice(ready >= 0 ? ready : 0, 1)[0]!)
  }
  return out
}
