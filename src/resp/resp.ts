/**
 * RESP2 on the hot path, hand-written: requests are parsed into zero-copy Buffer slices of the
 * received chunks, and backend replies are only scanned for their end so that their raw bytes can be
 * forwarded unchanged. Values of hundreds of MB arrive in many chunks; those chunks are collected and
 * joined once, when the frame is complete, never re-joined on every packet.
 */

export class ProtocolError extends Error {
  /** Complete requests that came before the malformed one in the same feed (answered before the error). */
  requests: Request[] = []
}

export interface Limits {
  /** Largest bulk string in a request (Redis: proto-max-bulk-len, 512 MB). */
  maxBulkLength: number
  /** Most arguments in one request. */
  maxArgs: number
  /** Longest inline command line. */
  maxInlineLength: number
}

export const DEFAULT_LIMITS: Limits = {maxBulkLength: 512 * 1024 * 1024, maxArgs: 1024 * 1024, maxInlineLength: 64 * 1024}

/** Before AUTH (when a password is set) Redis accepts at most 10 arguments of at most 16 KiB each. */
export const PREAUTH_MAX_ARGS = 10
export const PREAUTH_MAX_BULK = 16 * 1024
/**
 * What one parsed argument costs beyond its bytes (a Buffer slice object on the V8 heap): counted so
 * that a million empty arguments weigh what they really hold (docs/proxy-limits.md).
 */
export const ARG_OVERHEAD_BYTES = 120

export interface Request {
  args: Buffer[]
  /** The request's own bytes when it was sent as a RESP array (forwarded as-is when routed unchanged). */
  raw?: Buffer
}

const CR = 13
const LF = 10
const STAR = 42
const DOLLAR = 36

/** Reads a decimal integer between start and the CR at end. Returns NaN when malformed. */
/** The decimal integer in buf[start, end) (an optional '-', then digits); NaN when it is not one. */
export function readInt(buf: Buffer, start: number, end: number): number {
  if (start >= end) return NaN
  let neg = false
  let i = start
  if (buf[i] === 45) {
    neg = true
    i++
    if (i >= end) return NaN
  }
  let n = 0
  for (; i < end; i++) {
    const c = buf[i]! - 48
    if (c < 0 || c > 9) return NaN
    n = n * 10 + c
  }
  return neg ? -n : n
}

/**
 * Incremental request parser. feed() takes a chunk and returns the complete requests in it; a partial
 * request stays buffered. Throws ProtocolError on malformed input (the caller closes the connection).
 */
export class RequestParser {
  private chunks: Buffer[] = []
  private buffered = 0
  /** Bytes the pending frame needs at least before parsing is worth retrying. */
  private needed = 0
  /**
   * A multibulk request cut by the end of the received bytes: its complete arguments so far (slices
   * of earlier buffers) and its raw bytes up to the cut. Parsing resumes at the cut instead of
   * re-reading the whole request on every packet (which made requests with many arguments
   * quadratic: a 600k-argument MSET took 38 s).
   */
  private partial: {args: Buffer[]; count: number; rawParts: Buffer[]; rawBytes: number} | null = null
  /**
   * Set while the client has not authenticated (a password is set): Redis's pre-auth limits apply,
   * and feed() returns at most one request, so that the request after an AUTH is parsed as authed.
   */
  preAuth = false
  /** partial.rawBytes of the request being resumed (kept so suspend() need not re-sum its parts). */
  private resumedRawBytes = 0
  /** Where the unparsed rest of the last buffer starts, when a parse returned -1. */
  private resumeAt = 0

  constructor(private readonly limits: Limits = DEFAULT_LIMITS) {}

  feed(chunk: Buffer): Request[] {
    this.chunks.push(chunk)
    this.buffered += chunk.length
    if (this.buffered < this.needed) return []
    const buf = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.buffered)
    this.chunks = []
    this.buffered = 0
    this.needed = 0
    const out: Request[] = []
    let pos = 0
    let stop = -1
    try {
      const partial = this.partial
      if (partial) {
        this.partial = null
        this.resumedRawBytes = partial.rawBytes
        const end = this.parseArgs(buf, 0, 0, partial.args, partial.count, partial.rawParts, out)
        if (end < 0) stop = this.resumeAt
        else pos = end
      }
      while (stop < 0 && pos < buf.length && !(this.preAuth && out.length > 0)) {
        const end = buf[pos] === STAR ? this.parseMultibulk(buf, pos, out) : this.parseInline(buf, pos, out)
        if (end < 0) stop = this.resumeAt
        else pos = end
      }
    } catch (err) {
      this.partial = null
      if (err instanceof ProtocolError) err.requests = out
      throw err
    }
    const restFrom = stop >= 0 ? stop : pos
    if (restFrom < buf.length) {
      const rest = buf.subarray(restFrom)
      this.chunks.push(rest)
      this.buffered = rest.length
    }
    return out
  }

  /** Bytes held for an incomplete request (for memory limits and tests). */
  pendingBytes(): number {
    return this.buffered
  }

  /**
   * What the parser holds for this client: unparsed bytes, plus the bytes and per-argument cost of a
   * multibulk request cut short (the query buffer of Redis's client-query-buffer-limit).
   */
  heldBytes(): number {
    const p = this.partial
    return this.buffered + (p ? p.rawBytes + p.args.length * ARG_OVERHEAD_BYTES : 0)
  }

  /** Returns the offset after the request, or -1 when incomplete (setting resumeAt and needed). */
  private parseMultibulk(buf: Buffer, start: number, out: Request[]): number {
    const lineEnd = lineEndAt(buf, start, CR)
    if (lineEnd < 0 || lineEnd + 1 >= buf.length) {
      // Redis bounds a header line like an inline request (PROTO_INLINE_MAX_SIZE).
      if (buf.length - start > this.limits.maxInlineLength) throw new ProtocolError('too big mbulk count string')
      this.resumeAt = start
      return -1
    }
    // Like Redis, the byte after the CR is skipped unread (it is not checked to be '\\n').
    const count = readInt(buf, start + 1, lineEnd)
    if (lineEnd - start > 21 || Number.isNaN(count) || count > this.limits.maxArgs) throw new ProtocolError('invalid multibulk length')
    if (this.preAuth && count > PREAUTH_MAX_ARGS) throw new ProtocolError('unauthenticated multibulk length')
    const pos = lineEnd + 2
    if (count <= 0) return pos // Redis ignores empty arrays
    return this.parseArgs(buf, start, pos, [], count, null, out)
  }

  /**
   * Reads the bulk-string arguments of a multibulk request from pos until it has count of them.
   * frameStart is where this request's bytes begin in buf (0 when resuming).
   */
  private parseArgs(buf: Buffer, frameStart: number, pos: number, args: Buffer[], count: number, rawParts: Buffer[] | null, out: Request[]): number {
    while (args.length < count) {
      if (pos >= buf.length) return this.suspend(buf, frameStart, pos, pos + 4, args, count, rawParts)
      // As in Redis, the header's line must be complete before its '$' is checked.
      const lenEnd = lineEndAt(buf, pos, CR)
      if (lenEnd < 0 || lenEnd + 1 >= buf.length) {
        if (buf.length - pos > this.limits.maxInlineLength) throw new ProtocolError('too big bulk count string')
        return this.suspend(buf, frameStart, pos, pos + 4, args, count, rawParts)
      }
      if (buf[pos] !== DOLLAR) {
        throw new ProtocolError(`expected '$', got '${String.fromCharCode(buf[pos]!)}'`)
      }
      const len = readInt(buf, pos + 1, lenEnd)
      if (lenEnd - pos > 21 || Number.isNaN(len) || len < 0 || len > this.limits.maxBulkLength) throw new ProtocolError('invalid bulk length')
      if (this.preAuth && len > PREAUTH_MAX_BULK) throw new ProtocolError('unauthenticated bulk length')
      const dataStart = lenEnd + 2
      const dataEnd = dataStart + len
      if (dataEnd + 2 > buf.length) return this.suspend(buf, frameStart, pos, dataEnd + 2, args, count, rawParts)
      // Redis skips the two bytes after the data without checking them for CRLF; so does the proxy.
      args.push(buf.subarray(dataStart, dataEnd))
      pos = dataEnd + 2
    }
    const tail = buf.subarray(frameStart, pos)
    out.push({args, raw: rawParts ? Buffer.concat([...rawParts, tail]) : tail})
    return pos
  }

  /** Keeps the complete arguments; the next feed resumes at pos once neededEnd - pos bytes are there. */
  private suspend(buf: Buffer, frameStart: number, pos: number, neededEnd: number, args: Buffer[], count: number, rawParts: Buffer[] | null): number {
    const parts = rawParts ?? []
    let rawBytes = rawParts ? this.resumedRawBytes : 0
    if (pos > frameStart) {
      parts.push(buf.subarray(frameStart, pos))
      rawBytes += pos - frameStart
    }
    this.partial = {args, count, rawParts: parts, rawBytes}
    this.needed = neededEnd - pos
    this.resumeAt = pos
    return -1
  }

  /** Inline command: one line, arguments split on spaces, with "double" and 'single' quotes. */
  private parseInline(buf: Buffer, start: number, out: Request[]): number {
    const lf = lineEndAt(buf, start, LF)
    if (lf < 0) {
      if (buf.length - start > this.limits.maxInlineLength) throw new ProtocolError('too big inline request')
      this.resumeAt = start
      return -1
    }
    const lineEnd = lf > start && buf[lf - 1] === CR ? lf - 1 : lf
    const args = splitInline(buf.subarray(start, lineEnd))
    if (args.length > 0) out.push({args})
    return lf + 1
  }
}

/**
 * Where the line starting at start ends (the offset of the first `end` byte), or -1. Redis finds it
 * with strchr() on its query buffer, a C string: a NUL byte before it means "not there yet", so a
 * header or inline line holding a NUL waits for more bytes until the line limit closes the client.
 */
function lineEndAt(buf: Buffer, start: number, end: number): number {
  const at = buf.indexOf(end, start)
  if (at < 0) return -1
  for (let i = start; i < at; i++) if (buf[i] === 0) return -1 // header lines are a few bytes long
  return at
}

const isSpace = (c: number) => c === 32 || (c >= 9 && c <= 13)
const isHex = (c: number) => (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102)
const hexValue = (c: number) => (c <= 57 ? c - 48 : (c | 0x20) - 87)

/**
 * Splits an inline command line exactly as redis-server's sdssplitargs does: blanks are isspace()
 * between arguments but only space, tab, CR and LF end an unquoted argument; a quote inside an
 * argument opens a quoted part; "..." takes \xHH and \n \r \t \b \a escapes, '...' only \'; a
 * closing quote must be followed by a blank or the end. The line is a C string (it ends at a NUL).
 */
export function splitInline(input: Buffer): Buffer[] {
  const nul = input.indexOf(0)
  const line = nul >= 0 ? input.subarray(0, nul) : input
  const n = line.length
  const at = (i: number) => (i < n ? line[i]! : 0)
  const unbalanced = () => new ProtocolError('unbalanced quotes in request')
  const args: Buffer[] = []
  let p = 0
  for (;;) {
    while (p < n && isSpace(line[p]!)) p++
    if (p >= n) return args
    const cur: number[] = []
    let inDouble = false
    let inSingle = false
    let done = false
    while (!done) {
      const c = at(p)
      if (inDouble) {
        if (c === 92 && at(p + 1) === 120 && isHex(at(p + 2)) && isHex(at(p + 3))) {
          cur.push(hexValue(at(p + 2)) * 16 + hexValue(at(p + 3)))
          p += 3
        } else if (c === 92 && at(p + 1) !== 0) {
          const e = at(++p)
          cur.push(e === 110 ? 10 : e === 114 ? 13 : e === 116 ? 9 : e === 98 ? 8 : e === 97 ? 7 : e)
        } else if (c === 34) {
          if (at(p + 1) !== 0 && !isSpace(at(p + 1))) throw unbalanced()
          done = true
        } else if (c === 0) {
          throw unbalanced()
        } else cur.push(c)
      } else if (inSingle) {
        if (c === 92 && at(p + 1) === 39) {
          p++
          cur.push(39)
        } else if (c === 39) {
          if (at(p + 1) !== 0 && !isSpace(at(p + 1))) throw unbalanced()
          done = true
        } else if (c === 0) {
          throw unbalanced()
        } else cur.push(c)
      } else if (c === 32 || c === 10 || c === 13 || c === 9 || c === 0) {
        done = true
      } else if (c === 34) {
        inDouble = true
      } else if (c === 39) {
        inSingle = true
      } else cur.push(c)
      if (p < n) p++
    }
    args.push(Buffer.from(cur))
  }
}

/**
 * Finds complete replies in a backend stream without decoding them. Each call of feed() returns the
 * raw bytes of every complete reply, in order. It reads each byte once: a reply cut by the end of a
 * chunk is continued where it stopped (a header line cut in two is the only thing re-read), and its
 * pieces are joined once, when it is complete (re-scanning from the reply's start on every packet
 * made big array replies quadratic: a 300k-element MGET took 15 s).
 */
export class ReplyScanner {
  /** Bytes of the reply being received, from earlier chunks. */
  private parts: Buffer[] = []
  /** Elements still to read in the current reply (0 between replies). */
  private remaining = 0
  /** Bytes of a bulk string, plus its CRLF, still to pass over. */
  private skip = 0
  /** An element header line cut by the end of the last chunk. */
  private carry: Buffer | null = null

  feed(chunk: Buffer, onReply: (raw: Buffer) => void): void {
    let buf = chunk
    if (this.carry) {
      buf = Buffer.concat([this.carry, chunk])
      this.carry = null
    }
    const n = buf.length
    let pos = 0
    let start = 0
    while (pos < n) {
      if (this.skip > 0) {
        const step = Math.min(this.skip, n - pos)
        this.skip -= step
        pos += step
        if (this.skip > 0) break
      } else {
        const lineEnd = buf.indexOf(CR, pos)
        if (lineEnd < 0 || lineEnd + 1 >= n) {
          if (pos > start) this.parts.push(buf.subarray(start, pos))
          this.carry = buf.subarray(pos)
          return
        }
        if (this.remaining === 0) this.remaining = 1
        this.remaining--
        const type = buf[pos]
        if (type === DOLLAR) {
          const len = readInt(buf, pos + 1, lineEnd)
          if (len >= 0) this.skip = len + 2
        } else if (type === STAR) {
          const count = readInt(buf, pos + 1, lineEnd)
          if (count > 0) this.remaining += count
        }
        pos = lineEnd + 2
        if (this.skip > 0) continue
      }
      if (this.remaining === 0) {
        let raw = buf.subarray(start, pos)
        if (this.parts.length) {
          this.parts.push(raw)
          raw = Buffer.concat(this.parts)
          this.parts = []
        }
        onReply(raw)
        start = pos
      }
    }
    if (start < n) this.parts.push(buf.subarray(start, n))
  }

  reset(): void {
    this.parts = []
    this.remaining = 0
    this.skip = 0
    this.carry = null
  }
}

/** A decoded RESP2 value. Errors are objects so they can sit inside arrays. */
export type RespValue = string | number | Buffer | null | RespError | RespValue[]

export class RespError {
  constructor(readonly message: string) {}
}

/** Decodes one complete raw reply (as given by ReplyScanner). Simple strings decode to string. */
export function decodeReply(raw: Buffer): RespValue {
  const [value] = decodeAt(raw, 0)
  return value
}

/**
 * decodeReply for code running in a backend's reply callback, where a throw would escape to the
 * socket: a reply that is not RESP (a server on that address that is not Redis) becomes an error
 * value naming the first bytes, so a fan-out answers the client instead of crashing the proxy.
 */
export function decodeReplyOrError(raw: Buffer): RespValue {
  try {
    return decodeReply(raw)
  } catch {
    return new RespError(`ERR backend sent a reply that is not RESP: ${JSON.stringify(raw.toString('latin1', 0, Math.min(raw.length, 40)))}`)
  }
}

function decodeAt(buf: Buffer, pos: number): [RespValue, number] {
  const lineEnd = buf.indexOf(CR, pos)
  const type = buf[pos]
  switch (type) {
    case 43: // +
      return [buf.toString('utf8', pos + 1, lineEnd), lineEnd + 2]
    case 45: // -
      return [new RespError(buf.toString('utf8', pos + 1, lineEnd)), lineEnd + 2]
    case 58: // :
      return [readInt(buf, pos + 1, lineEnd), lineEnd + 2]
    case DOLLAR: {
      const len = readInt(buf, pos + 1, lineEnd)
      if (len < 0) return [null, lineEnd + 2]
      const start = lineEnd + 2
      return [buf.subarray(start, start + len), start + len + 2]
    }
    case STAR: {
      const n = readInt(buf, pos + 1, lineEnd)
      if (n < 0) return [null, lineEnd + 2]
      let p = lineEnd + 2
      const arr: RespValue[] = new Array(n)
      for (let i = 0; i < n; i++) {
        const [v, next] = decodeAt(buf, p)
        arr[i] = v
        p = next
      }
      return [arr, p]
    }
    default:
      throw new ProtocolError(`bad reply type byte ${type}`)
  }
}

// ---- encoders ----

export const OK = Buffer.from('+OK\r\n')
export const PONG = Buffer.from('+PONG\r\n')
export const NULL_BULK = Buffer.from('$-1\r\n')
export const NULL_ARRAY = Buffer.from('*-1\r\n')
export const EMPTY_ARRAY = Buffer.from('*0\r\n')

export function encodeError(message: string): Buffer {
  return Buffer.from(`-${message.replace(/[\r\n]+/g, ' ')}\r\n`)
}

export function encodeSimple(s: string): Buffer {
  return Buffer.from(`+${s}\r\n`)
}

export function encodeInt(n: number): Buffer {
  return Buffer.from(`:${n}\r\n`)
}

export function encodeBulk(b: Buffer | string | null): Buffer {
  if (b === null) return NULL_BULK
  const data = typeof b === 'string' ? Buffer.from(b) : b
  return Buffer.concat([Buffer.from(`$${data.length}\r\n`), data, Buffer.from('\r\n')])
}

/** Encodes a request (array of bulk strings), as sent to a backend. */
export function encodeCommand(args: (Buffer | string | number)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)]
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a))
    parts.push(Buffer.from(`$${b.length}\r\n`), b, CRLF)
  }
  return Buffer.concat(parts)
}

const CRLF = Buffer.from('\r\n')

/** Encodes a decoded value back to RESP2 (strings as bulk). */
export function encodeValue(v: RespValue): Buffer {
  if (v === null) return NULL_BULK
  if (typeof v === 'number') return encodeInt(v)
  if (typeof v === 'string') return encodeBulk(v)
  if (Buffer.isBuffer(v)) return encodeBulk(v)
  if (v instanceof RespError) return encodeError(v.message)
  return Buffer.concat([Buffer.from(`*${v.length}\r\n`), ...v.map(encodeValue)])
}

/** Joins raw replies into one array reply. */
export function encodeArrayOfRaw(items: Buffer[]): Buffer {
  return Buffer.concat([Buffer.from(`*${items.length}\r\n`), ...items])
}
