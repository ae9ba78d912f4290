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
