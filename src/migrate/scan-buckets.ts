/**
 * Buckets the keys of raw SCAN replies by slot, straight into packed bucket rows (the checkpoint's
 * format: each key a 4-byte big-endian length and its bytes). Decoding a page into one Buffer per key
 * and packing them afterwards cost the mover ~1 µs per key, the larger half of a million-key scan.
 */
import {slotOfRange} from '../topology/slots.js'
import {readInt} from '../resp/resp.js'
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

/** Reads the count or length after a type byte at pos; returns it and the position after its CRLF. */
function header(buf: Buffer, pos: number, type: number): [number, number] {
  if (buf[pos] !== type) throw new MalformedScanReply(`expected '${String.fromCharCode(type)}' at byte ${pos}`)
  const end = buf.indexOf(CR, pos + 1)
  if (end < 0) throw new MalformedScanReply('cut short')
  const n = readInt(buf, pos + 1, end)
  if (!(n >= 0)) throw new MalformedScanReply(`bad number at byte ${pos + 1}`)
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
      const start = pos
      pos += len + 2
      if (isInternalKey(raw, start, start + len)) continue
      const slot = slotOfRange(raw, start, start + len)
      if (this.wanted(slot)) this.push(slot, raw, start, len)
    }
    return {cursor, keys: count}
  }

  /** Appends the key raw[start, start + len) to the slot's last row. */
  private push(slot: number, raw: Buffer, start: number, len: number): void {
    let list = this.rows.get(slot)
    if (!list) this.rows.set(slot, (list = []))
    let row = list[list.length - 1]
    if (!row || row.count >= BUCKET_ROW_KEYS) list.push((row = {count: 0, buf: Buffer.allocUnsafe(1024), used: 0}))
    const need = row.used + 4 + len
    if (row.buf.length < need) {
      const bigger = Buffer.allocUnsafe(Math.max(need, row.buf.length * 2))
      row.buf.copy(bigger, 0, 0, row.used)
      row.buf = bigger
    }
    row.buf.writeUInt32BE(len, row.used)
    raw.copy(row.buf, row.used + 4, start, start + len)
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

/**
 * A source is scanned as two lanes side by side, each waiting for its own replies, so that Redis
 * always has the next SCAN queued (one lane alone spends about a third of its time on round trips).
 * A SCAN cursor's lowest bit is the lowest bit of the bucket it points at, whatever the table's size,
 * and the cursor visits buckets in reversed-bit order: lane 0 (from cursor 0) covers the buckets of
 * even index and ends at the first odd cursor, lane 1 (from cursor 1) the odd ones and ends at 0. A
 * page that runs past its lane's end only repeats keys, and a key met twice moves once.
 */
export interface ScanLane {
  /** The cursor of the next page to read; null when the lane is done. */
  cursor: string | null
  /** Lane 0 of two: it also ends at an odd cursor. */
  firstHalf: boolean
}

/** The lanes of a new scan, or of one recorded by lanesText (a single cursor: an older one-lane scan). */
export function lanesFrom(recorded: string | null): ScanLane[] {
  if (recorded === null) return [{cursor: '0', firstHalf: true}, {cursor: '1', firstHalf: false}]
  const parts = recorded.split('/')
  if (parts.length === 1) return [{cursor: recorded === '0' ? null : recorded, firstHalf: false}]
  return parts.map((c, i) => ({cursor: c === '-' ? null : c, firstHalf: i === 0}))
}

export function lanesText(lanes: ScanLane[]): string {
  if (lanes.length === 1) return lanes[0]!.cursor ?? '0'
  return lanes.map((l) => l.cursor ?? '-').join('/')
}

/** Where a lane goes after a page that returned next: null once it is done. */
export function laneNext(lane: ScanLane, next: string): string | null {
  if (next === '0') return null
  if (lane.firstHalf && (next.charCodeAt(next.length - 1) - 48) % 2 === 1) return null
  return next
}
