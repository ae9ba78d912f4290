import CRC32 from 'crc-32'

/** The key space is split into this many slots (as Codis/Reborn). */
export const SLOT_COUNT = 1024

const OPEN_BRACE = 0x7b
const CLOSE_BRACE = 0x7d

/**
 * The part of a key that is hashed: Redis Cluster's hash tag rule. If the key has a `{` and a `}`
 * after it with at least one byte between, the bytes between the first `{` and the first `}` after
 * it; otherwise the whole key.
 */
export function hashTag(key: Buffer): Buffer {
  const open = key.indexOf(OPEN_BRACE)
  if (open < 0) return key
  const close = key.indexOf(CLOSE_BRACE, open + 1)
  if (close < 0 || close === open + 1) return key
  return key.subarray(open + 1, close)
}

/** The slot of a binary-safe key: IEEE CRC-32 of its hash tag, mod 1024. */
export function slotOf(key: Buffer | string): number {
  const buf = typeof key === 'string' ? Buffer.from(key) : key
  // crc-32 returns a signed 32-bit integer; >>> 0 makes it unsigned as Codis computes it.
  return (CRC32.buf(hashTag(buf)) >>> 0) % SLOT_COUNT
}

/** IEEE CRC-32 table (the crc-32 package's), for slotOfRange. */
const CRC_TABLE = (() => {
  const t = new Int32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? -306674912 ^ (c >>> 1) : c >>> 1
    t[n] = c
  }
  return t
})()

/**
 * slotOf(buf.subarray(start, end)) without making the subarray: the mover's scan computes a million
 * of these, and the views (three per key with the hash tag and CRC32.buf) were most of its cost.
 */
export function slotOfRange(buf: Buffer, start: number, end: number): number {
  let from = start
  let to = end
  for (let i = start; i < end; i++) {
    if (buf[i] !== OPEN_BRACE) continue
    for (let j = i + 1; j < end; j++) {
      if (buf[j] !== CLOSE_BRACE) continue
      if (j > i + 1) {
        from = i + 1
        to = j
      }
      break
    }
    break
  }
  let c = -1
  for (let i = from; i < to; i++) c = CRC_TABLE[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8)
  return ((c ^ -1) >>> 0) % SLOT_COUNT
}

/** "0-511,600,700-701": slot ids (any order) in compact form, cut after max runs for messages. */
export function slotIdsText(ids: number[], max = 8): string {
  const sorted = [...ids].sort((a, b) => a - b)
  const parts: string[] = []
  let i = 0
  while (i < sorted.length) {
    let j = i
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`)
    i = j + 1
  }
  return parts.length > max ? `${parts.slice(0, max).join(',')},... (${sorted.length} slots)` : parts.join(',')
}
