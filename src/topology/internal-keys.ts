/**
 * rstore's own key space inside the Redis groups (`__rstore:*`), which clients can neither read nor
 * write (docs/migration.md, "Pending sets"). Every such key is named here, for the proxy that writes
 * pending sets and refuses the prefix, and for the mover that reads, checks and deletes them.
 */

export const INTERNAL_KEY_PREFIX = '__rstore:'
const RESERVED = Buffer.from(INTERNAL_KEY_PREFIX)

/** The set on a source group listing the keys written in a pending slot (docs/migration.md). */
export function pendingSetKey(slot: number): string {
  return `${INTERNAL_KEY_PREFIX}pending:${slot}`
}

/** The member the mover puts in each pending set before the slot goes pending: a set that lost it was deleted or emptied. */
export const PENDING_INTACT = `${INTERNAL_KEY_PREFIX}intact`

/** Whether a client's key is in rstore's own key space (refused by the proxy, see README). */
export function isReservedKey(key: Buffer): boolean {
  return key.length >= RESERVED.length && key.compare(RESERVED, 0, RESERVED.length, 0, RESERVED.length) === 0
}

/** Whether buf[start, end) starts with the internal prefix (a key seen in a raw SCAN reply). */
export function isReservedKeyAt(buf: Buffer, start: number, end: number): boolean {
  const n = RESERVED.length
  return end - start >= n && buf.compare(RESERVED, 0, n, start, start + n) === 0
}
