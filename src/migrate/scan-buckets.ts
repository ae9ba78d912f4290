/**
 * Buckets the keys of raw SCAN replies by slot, straight into packed bucket rows (the checkpoint's
 * format: each key a 4-byte big-endian length and its bytes). Decoding a page into one Buffer per key
 * and packing them afterwards cost the mover ~1 µs per key, the larger half of a million-key scan.
 */
import {slotOf} from '../topology/slots.js'
import {isInternalKey} from './redis-keys.js'

/** Keys per stored bucket row (a held slot's move starts after reading one). */
export const BUCKET_ROW_KEYS = 1000

/** One bucket row being filled. */
export interface PackedRow {
  count: number
  /** The packed keys (a view of a larger buffer while the row grows). */
  blob: Buffer
}

const CR = 13

class MalformedScanReply extends Error {
  constructor(what: string) {
    super(`malformed SCAN reply: ${what}`)
  }
}

/** Reads the decimal after a type byte at pos; returns it and the position after its CRLF. */
function header(buf: Buffer, pos: number, type: number): [number, number] {
  if (buf[pos] !== type) throw new MalformedScanReply(`expected '${String.fromCharCode(type)}' at byte ${pos}`)
  const end = buf.indexOf(CR, pos + 1)
  if (end < 0) throw new MalformedScanReply('cut short')
  let n = 0
  for (let i = pos + 1; i < end; i++) n = n * 10 + (buf[i]! - 48)
  return [n, end + 2]
}

/** A row being filled: its keys packed in buf[0, used). */
interface FillingRow {
  count: number
  buf: Buffer
  used: number
}

export class ScanBuckets {
  private rows = new Map<number, FillingRow[]>()
  /** Keys bucketed since the last take(). */
  pending = 0

  constructor(private readonly wanted: (slot: number) => boolean) {}

  /** The next cursor of a raw SCAN reply (read before bucketing it, to ask for the next page first). */
  static cursorOf(raw: Buffer): string {
    const [len, pos] = header(raw, header(raw, 0, 42)[1], 36)
    return raw.toString('latin1', pos, pos + len)
  }

  /** Buckets the wanted keys of one raw SCAN reply; returns its next cursor and its key count. */
  addPage(raw: Buffer): {cursor: string; keys: number} {
    let [, pos] = header(raw, 0, 42) // *2
    let len: number
    ;[len, pos] = header(raw, pos, 36) // $ cursor
    const cursor = raw.toString('latin1', pos, pos + len)
    pos += len + 2
    let count: number
    ;[count, pos] = header(raw, pos, 42)
    for (let i = 0; i < count; i++) {
      ;[len, pos] = header(raw, pos, 36)
      if (pos + len + 2 > raw.length) throw new MalformedScanReply('cut short')
      const key = raw.subarray(pos, pos + len)
      pos += len + 2
      if (isInternalKey(key)) continue
      const slot = slotOf(key)
      if (this.wanted(slot)) this.push(slot, key)
    }
    return {cursor, keys: count}
  }

  private push(slot: number, key: Buffer): void {
    let list = this.rows.get(slot)
    if (!list) this.rows.set(slot, (list = []))
    let row = list[list.length - 1]
    if (!row || row.count >= BUCKET_ROW_KEYS) list.push((row = {count: 0, buf: Buffer.allocUnsafe(1024), used: 0}))
    const need = row.used + 4 + key.length
    if (row.buf.length < need) {
      const bigger = Buffer.allocUnsafe(Math.max(need, row.buf.length * 2))
      row.buf.copy(bigger, 0, 0, row.used)
      row.buf = bigger
    }
    row.buf.writeUInt32BE(key.length, row.used)
    key.copy(row.buf, row.used + 4)
    row.used = need
    row.count++
    this.pending++
  }

  /** The rows bucketed since the last take(), per slot; starts afresh. */
  take(): Map<number, PackedRow[]> {
    const out = new Map<number, PackedRow[]>()
    for (const [slot, list] of this.rows) out.set(slot, list.map((r) => ({count: r.count, blob: r.buf.subarray(0, r.used)})))
    this.rows = new Map()
    this.pending = 0
    return out
  }
}
