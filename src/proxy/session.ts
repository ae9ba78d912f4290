import type {Socket} from 'node:net'
import {writeBatch} from './write.js'
import {ProtocolError, RequestParser, encodeError, type Limits, type Request} from './resp.js'

/** One reply position in a client's queue; replies are written strictly in request order. */
export interface ReplySlot {
  data: Buffer | null
  started: number
  command: string
}

/** Sessions with replies ready to write; flushed once per batch of events, one write each. */
const dirty = new Set<Session>()

export function flushDirtySessions(): void {
  if (dirty.size === 0) return
  for (const s of dirty) s.flush()
  dirty.clear()
}

export interface SessionHost {
  handle(session: Session, req: Request): void
  onReplyDone(slot: ReplySlot): void
  onClose(session: Session): void
}

/** A client connection: parses requests, keeps reply order, holds per-connection state. */
export class Session {
  private readonly parser: RequestParser
  private readonly queue: ReplySlot[] = []
  private head = 0
  authed: boolean
  name: Buffer | null = null
  closing = false
  closed = false
  /**
   * Set while a command waits for its key to be moved off a migrating slot: later requests of this
   * client wait behind it, so one client's commands on a key are never reordered.
   */
  held: Request[] | null = null
  readonly connectedAt = Date.now()
  lastCommandAt = Date.now()

  constructor(
    readonly id: number,
    readonly socket: Socket,
    private readonly host: SessionHost,
    limits: Limits,
    needsAuth: boolean,
  ) {
    this.parser = new RequestParser(limits)
    this.authed = !needsAuth
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => this.onData(chunk))
    socket.on('error', () => {})
    socket.on('close', () => {
      this.closed = true
      dirty.delete(this)
      host.onClose(this)
    })
  }

  private onData(chunk: Buffer): void {
    if (this.closing) return
    let reqs: Request[]
    try {
      reqs = this.parser.feed(chunk)
    } catch (err) {
      const msg = err instanceof ProtocolError ? err.message : String(err)
      // The requests before the malformed one run first (as in Redis), then the error, then the
      // connection closes once every reply is written.
      if (err instanceof ProtocolError) this.run(err.requests)
      if (!this.closing) {
        // (Unless one of them was QUIT: then Redis closes without reading further.)
        this.pushReady(encodeError(`ERR Protocol error: ${msg}`), 'protocol')
        this.closing = true
      }
      flushDirtySessions()
      return
    }
    this.lastCommandAt = Date.now()
    this.run(reqs)
    flushDirtySessions()
  }

  private run(reqs: Request[]): void {
    for (const req of reqs) {
      if (this.closing) break
      if (this.held) this.held.push(req)
      else this.host.handle(this, req)
    }
  }

  /** Reserves the next reply position. */
  reserve(command: string): ReplySlot {
    const slot: ReplySlot = {data: null, started: performance.now(), command}
    this.queue.push(slot)
    return slot
  }

  /** Fills a reserved position; the session is flushed at the end of the current batch. */
  fill(slot: ReplySlot, data: Buffer): void {
    slot.data = data
    this.host.onReplyDone(slot)
    if (!this.closed && this.queue[this.head] === slot) dirty.add(this)
  }

  /** Queues a reply that is ready now. */
  pushReady(data: Buffer, command: string): void {
    this.fill(this.reserve(command), data)
  }

  /** Lets held requests run again (after the command that held them has been sent on). */
  release(): void {
    const held = this.held
    this.held = null
    if (!held) return
    for (let i = 0; i < held.length; i++) {
      if (this.held) {
        // A held request held the session again: keep the rest behind it, in order.
        ;(this.held as Request[]).push(...held.slice(i))
        return
      }
      this.host.handle(this, held[i]!)
    }
  }

  flush(): void {
    if (this.closed) return
    const q = this.queue
    let i = this.head
    const out: Buffer[] = []
    while (i < q.length && q[i]!.data !== null) out.push(q[i++]!.data!)
    if (out.length === 0) return
    if (i === q.length) {
      q.length = 0
      this.head = 0
    } else {
      this.head = i
      if (this.head > 256) {
        q.splice(0, this.head)
        this.head = 0
      }
    }
    writeBatch(this.socket, out)
    if (this.closing && this.head === q.length) this.socket.end()
  }

  /** Ends the connection once every queued reply has been written (QUIT). */
  closeAfterReplies(): void {
    this.closing = true
    if (this.head === this.queue.length) this.socket.end()
  }

  pendingReplies(): number {
    return this.queue.length - this.head
  }
}
