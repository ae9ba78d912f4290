import {createHash} from 'node:crypto'

/**
 * A ketama consistent-hash ring as Twemproxy builds it (md5, 4 points per digest, a key's hash is the
 * first 4 digest bytes little-endian), except that every item gets a fixed number of points per unit of
 * weight (POINTS_PER_WEIGHT) instead of a share of 160 x item count: an item's points never depend on
 * the other items, so removing one item moves only the keys that were on it, and adding one moves only
 * keys onto it.
 */
export const POINTS_PER_WEIGHT = 160
const POINTS_PER_HASH = 4

export interface KetamaItem {
  /** Stable identity of the item on the ring (its points are derived from it). */
  name: string
  /** Positive integer weight. */
  weight: number
}

export class KetamaRing {
  /** Sorted point values and, in parallel, the index of the owning item. */
  private readonly points: Uint32Array
  private readonly owners: Int32Array

  constructor(readonly items: readonly KetamaItem[]) {
    const all: {value: number; owner: number; name: string}[] = []
    items.forEach((item, owner) => {
      const digests = (POINTS_PER_WEIGHT * item.weight) / POINTS_PER_HASH
      for (let i = 0; i < digests; i++) {
        const d = md5(Buffer.from(`${item.name}-${i}`))
        for (let x = 0; x < POINTS_PER_HASH; x++) {
          const value = ((d[3 + x * 4] << 24) | (d[2 + x * 4] << 16) | (d[1 + x * 4] << 8) | d[x * 4]) >>> 0
          all.push({value, owner, name: item.name})
        }
      }
    })
    // Ties (rare) are broken by name so the ring does not depend on the items' order.
    all.sort((a, b) => a.value - b.value || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    this.points = Uint32Array.from(all.map((p) => p.value))
    this.owners = Int32Array.from(all.map((p) => p.owner))
  }

  /** Index (into items) of the item that owns key; -1 when the ring is empty. */
  lookup(key: Buffer): number {
    const n = this.points.length
    if (!n) return -1
    const h = ketamaHash(key)
    // first point >= h, wrapping to the first point
    let lo = 0
    let hi = n
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.points[mid] < h) lo = mid + 1
      else hi = mid
    }
    return this.owners[lo === n ? 0 : lo]
  }
}

/** Twemproxy's ketama key hash: md5, bytes 0..3 little-endian. */
export function ketamaHash(key: Buffer): number {
  const d = md5(key)
  return ((d[3] << 24) | (d[2] << 16) | (d[1] << 8) | d[0]) >>> 0
}

function md5(b: Buffer): Buffer {
  return createHash('md5').update(b).digest()
}
