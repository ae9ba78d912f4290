import type {KeySnapshot} from './types.js'

/** Why two snapshots of a key differ. */
export type DiffReason = 'missing' | 'type' | 'value' | 'ttl'

function sameValue(a: KeySnapshot, b: KeySnapshot): boolean {
  const sortBuf = (xs: Buffer[]) => [...xs].sort(Buffer.compare)
  switch (a.type) {
    case 'string':
      return a.value.equals(b.value as Buffer)
    case 'list': {
      const bv = b.value as Buffer[]
      return a.value.length === bv.length && a.value.every((x, i) => x.equals(bv[i]))
    }
    case 'set': {
      const [x, y] = [sortBuf(a.value), sortBuf(b.value as Buffer[])]
      return x.length === y.length && x.every((v, i) => v.equals(y[i]))
    }
    case 'hash': {
      const m = new Map(a.value.map(([f, v]) => [f.toString('latin1'), v]))
      const bv = b.value as [Buffer, Buffer][]
      return m.size === new Set(bv.map(([f]) => f.toString('latin1'))).size && bv.every(([f, v]) => m.get(f.toString('latin1'))?.equals(v))
    }
    case 'zset': {
      const m = new Map(a.value.map(([k, s]) => [k.toString('latin1'), s]))
      const bv = b.value as [Buffer, number][]
      return m.size === bv.length && bv.every(([k, s]) => m.get(k.toString('latin1')) === s)
    }
  }
}

const describe = (s: KeySnapshot) => `${s.type}${s.type === 'string' ? `(${s.value.length} bytes)` : `(${s.value.length} items)`}`

/** Compares one key; null when equal (type, value, and TTL within ttlTolerance ms). */
export function compareSnapshots(src: KeySnapshot, dst: KeySnapshot | null, ttlTolerance: number): {reason: DiffReason; detail: string} | null {
  if (!dst) return {reason: 'missing', detail: `missing on target (source: ${describe(src)})`}
  if (src.type !== dst.type) return {reason: 'type', detail: `type ${src.type} on source, ${dst.type} on target`}
  if (!sameValue(src, dst)) return {reason: 'value', detail: `value differs: ${describe(src)} on source, ${describe(dst)} on target`}
  const ttlOk = src.pttl === -1 ? dst.pttl === -1 : dst.pttl !== -1 && Math.abs(src.pttl - dst.pttl) <= ttlTolerance
  if (!ttlOk) return {reason: 'ttl', detail: `ttl ${src.pttl} ms on source, ${dst.pttl} ms on target`}
  return null
}

/** Two reads of possibly absent keys: equal when both absent, or both present and compareSnapshots finds nothing. */
export function sameSnapshot(a: KeySnapshot | null, b: KeySnapshot | null, ttlTolerance: number): boolean {
  if (!a || !b) return !a && !b
  return compareSnapshots(a, b, ttlTolerance) === null
}
