/**
 * A raw TCP Redis client for protocol-level tests: writes exact bytes and reads replies with its own
 * small RESP2 decoder (independent of the proxy's parser, so the tests do not check the code with
 * itself).
 */
import {connect, type Socket} from 'node:net'

export type Reply = string | number | Buffer | null | ReplyError | Reply[]

export class ReplyError {
  constructor(readonly message: string) {}
  toString(): string {
    return `-${this.message}`
  }
}

/** Decodes one reply at pos; returns [value, next offset] or undefined if incomplete. */
export function decodeOne(buf: Buffer, pos: number): [Reply, number] | undefined {
  if (pos >= buf.length) return undefined
  const cr = buf.indexOf('\r\n', pos)
  if (cr < 0) return undefined
  const line = buf.toString('latin1', pos + 1, cr)
  const next = cr + 2
  switch (buf[pos]) {
    case 0x2b: // +
      return [line, next]
    case 0x2d: // -
      return [new ReplyError(line), next]
    case 0x3a: // :
      return [Number(line), next]
    case 0x24: {
      // $
      const n = Number(line)
      if (n < 0) return [null, next]
      if (next + n + 2 > buf.length) return undefined
      return [buf.subarray(next, next + n), next + n + 2]
    }
    case 0x2a: {
      // *
      const n = Number(line)
      if (n < 0) return [null, next]
      const out: Reply[] = []
      let p = next
      for (let i = 0; i < n; i++) {
        const r = decodeOne(buf, p)
        if (!r) return undefined
        out.push(r[0])
        p = r[1]
      }
      return [out, p]
    }
    default:
      throw new Error(`bad reply byte ${buf[pos]} at ${pos}: ${JSON.stringify(buf.toString('latin1', pos, pos + 40))}`)
  }
}

/** Encodes a command as a RESP array of bulk strings. */
export function cmd(...args: (string | Buffer | number)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)]
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a))
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'))
  }
  return Buffer.concat(parts)
}

export class RawClient {
  private chunks: Buffer[] = []
  private data: Buffer = Buffer.alloc(0)
  private pos = 0
  closed = false
  private waiters: (() => void)[] = []

  private constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.chunks.push(d)
      this.wake()
    })
    socket.on('error', () => {})
    socket.on('close', () => {
      this.closed = true
      this.wake()
    })
  }

  static connect(port: number, host = '127.0.0.1'): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = connect(port, host)
      s.setNoDelay(true)
      s.once('connect', () => {
        s.off('error', reject)
        resolve(new RawClient(s))
      })
      s.once('error', reject)
    })
  }

  private wake(): void {
    const w = this.waiters
    this.waiters = []
    for (const f of w) f()
  }

  private pending(): Buffer {
    if (this.chunks.length) {
      this.data = Buffer.concat([this.data.subarray(this.pos), ...this.chunks])
      this.pos = 0
      this.chunks = []
    }
    return this.data
  }

  private waitData(deadline: number): Promise<boolean> {
    if (this.closed) return Promise.resolve(false)
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), Math.max(0, deadline - Date.now()))
      this.waiters.push(() => {
        clearTimeout(t)
        resolve(true)
      })
    })
  }

  write(data: Buffer | string): void {
    this.socket.write(data)
  }

  /** Sends a command and reads its reply. */
  async call(...args: (string | Buffer | number)[]): Promise<Reply> {
    this.write(cmd(...args))
    return (await this.read(1))[0]!
  }

  /** Reads exactly n replies (fails on timeout or close). */
  async read(n: number, timeoutMs = 10000): Promise<Reply[]> {
    const out: Reply[] = []
    const deadline = Date.now() + timeoutMs
    while (out.length < n) {
      const buf = this.pending()
      const r = decodeOne(buf, this.pos)
      if (r) {
        out.push(r[0])
        this.pos = r[1]
        continue
      }
      if (this.closed) throw new Error(`connection closed after ${out.length} of ${n} replies`)
      if (Date.now() >= deadline || !(await this.waitData(deadline))) {
        if (this.closed) continue
        throw new Error(`timed out after ${out.length} of ${n} replies`)
      }
    }
    return out
  }

  /** Every byte received until the server closes the connection or timeoutMs passes. */
  async readAll(timeoutMs = 2000): Promise<{data: Buffer; closed: boolean}> {
    const deadline = Date.now() + timeoutMs
    while (!this.closed && Date.now() < deadline) await this.waitData(deadline)
    const buf = this.pending()
    const data = Buffer.from(buf.subarray(this.pos))
    this.pos = buf.length
    return {data, closed: this.closed}
  }

  close(): void {
    this.socket.destroy()
  }
}

/** Connects, sends bytes, and returns what came back until close or timeout. */
export async function exchange(port: number, data: Buffer | string | (Buffer | string)[], timeoutMs = 1500): Promise<{data: Buffer; closed: boolean}> {
  const c = await RawClient.connect(port)
  try {
    for (const d of Array.isArray(data) ? data : [data]) c.write(d)
    return await c.readAll(timeoutMs)
  } finally {
    c.close()
  }
}
