import type {Socket} from 'node:net'
import {writeBatch} from '../resp/write.js'
import {ProtocolError, RequestParser, type Limits, type Request} from '../resp/resp.js'

/** How long and how much a closing connection keeps reading (and dropping) what the client still sends. */
const LINGER_MS = 1000
const LINGER_BYTES = 64 * 1024

/** One reply position in a client's queue; replies are written strictly in request order. */
export interface ReplySlot {
  data: Buffer | null
  started: number
  command: string
}

/** Sessions with replies ready to write; flushed once per batch of events, one write each. */
const dirty = new Set<Session>()
const EMPTY = Buffer.alloc(0)

export function flushDirtySessions(): void {
  if (dirty.size === 0) return
  for (const s of dirty) s.flush()
  dirty.clear()
}

/**
 * Per-client memory bounds (docs/proxy-limits.md). Redis closes a client past
 * client-query-buffer-limit; past the output bounds the proxy first stops reading the client (so a
 * client that never reads cannot make it buffer more replies), then closes it.
 */
export interface ClientLimits {
  /** Bytes the parser may hold for one client's unfinished request (Redis: client-query-buffer-limit, 1 GiB). */
  queryBufferLimit: number
  /** Unwritten reply bytes past which the client's requests are no longer read. */
  outputPauseBytes: number
  /** Replies answered but not yet written past which reading stops too (a deep pipeline never read). */
  outputPauseReplies: number
  /** Unwritten reply bytes past which the client is closed (Redis: client-output-buffer-limit). */
  outputBufferLimit: number
}

export const DEFAULT_CLIENT_LIMITS: ClientLimits = {
  queryBufferLimit: 1024 * 1024 * 1024,
  outputPauseBytes: 4 * 1024 * 1024,
  outputPauseReplies: 1024,
  outputBufferLimit: 1024 * 1024 * 1024,
}

export interface SessionHost {
  handle(session: Session, req: Request): void
  onReplyDone(slot: ReplySlot): void
  onClose(session: Session): void
  /** The client's parser now holds more than before (for the proxy-wide client memory ceiling). */
  onQueryGrowth?(session: Session): void
  /** The client was closed for passing one of its limits. */
  onLimitClose?(session: Session, why: string): void
}

/** A client connection: parses requests, keeps reply order, holds per-connection state. */
export class Session {
  private readonly parser: RequestParser
  private readonly queue: ReplySlot[] = []
  private head = 0
  private authenticated: boolean
  /** Reading is paused because replies pile up unread (resumed when they drain). */
  private outputPaused = false
  private drainArmed = false
  /** Failed AUTH attempts on this connection (later ones are answered more slowly). */
  authFailures = 0
  /** When the last throttled AUTH reply is due: throttled replies are serialized. */
  authDelayUntil = 0
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
    private readonly clientLimits: ClientLimits = DEFAULT_CLIENT_LIMITS,
  ) {
    this.parser = new RequestParser(limits)
    this.authenticated = !needsAuth
    this.parser.preAuth = needsAuth
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => this.onData(chunk))
    socket.on('error', () => {})
    socket.on('close', () => {
      this.closed = true
      dirty.delete(this)
      host.onClose(this)
    })
  }

  get authed(): boolean {
    return this.authenticated
  }

  /** Authentication also switches the parser's pre-auth limits. */
  set authed(v: boolean) {
    this.authenticated = v
    this.parser.preAuth = !v
  }

  private ending = false

  private onData(chunk: Buffer): void {
    if (this.closing) return
    const before = this.parser.heldBytes()
    try {
      // Before AUTH the parser gives one request at a time: the next is parsed with the limits that
      // the one before (an AUTH) left in force, as Redis does.
      let oneAtATime = this.parser.preAuth
      let reqs = this.parser.feed(chunk)
      this.lastCommandAt = Date.now()
      this.run(reqs)
      while (oneAtATime && reqs.length > 0 && !this.closing && this.parser.pendingBytes() > 0) {
        oneAtATime = this.parser.preAuth
        reqs = this.parser.feed(EMPTY)
        this.run(reqs)
      }
    } catch (err) {
      const msg = err instanceof ProtocolError ? err.message : String(err)
      // The requests before the malformed one run first (as in Redis), then the error, then the
      // connection closes once every reply is written, reading nothing more.
      if (err instanceof ProtocolError) this.run(err.requests)
      if (!this.closing) {
        // (Unless one of them was QUIT: then Redis closes without reading further.)
        // latin1: a byte quoted in the message ("expected '$', got 'X'") goes out as that byte, as in Redis.
        this.pushReady(Buffer.from(`-ERR Protocol error: ${msg.replace(/[\r\n]+/g, ' ')}\r\n`, 'latin1'), 'protocol')
        this.closing = true
      }
      this.socket.pause()
      flushDirtySessions()
      return
    }
    const held = this.parser.heldBytes()
    if (held > this.clientLimits.queryBufferLimit) {
      // Redis closes such a client without a reply ("closing client that reached max query buffer length").
      this.closeForLimit(`query buffer ${held} bytes > client-query-buffer-limit ${this.clientLimits.queryBufferLimit}`)
      return
    }
    if (held > before) this.host.onQueryGrowth?.(this)
    flushDirtySessions()
    this.checkOutput()
  }

  /** Memory this client holds in the proxy: its unfinished request and its unwritten replies. */
  memoryBytes(): number {
    return this.parser.heldBytes() + this.socket.writableLength
  }

  /** Closes the client at once for passing a limit (its unwritten replies are dropped). */
  closeForLimit(why: string): void {
    if (this.closed) return
    this.closing = true
    this.host.onLimitClose?.(this, why)
    this.socket.destroy()
  }

  /**
   * Output backpressure: stop reading while the client's replies pile up unwritten, close it past
   * the output limit; reading resumes once its socket drains.
   */
  private checkOutput(): void {
    if (this.closed) return
    const lim = this.clientLimits
    const unwritten = this.socket.writableLength
    if (unwritten > lim.outputBufferLimit) {
      this.closeForLimit(`output buffer ${unwritten} bytes > client-output-buffer-limit ${lim.outputBufferLimit}`)
      return
    }
    const pile = unwritten > lim.outputPauseBytes || this.pendingReplies() + (this.held?.length ?? 0) > lim.outputPauseReplies
    if (pile) {
      if (!this.outputPaused) {
        this.outputPaused = true
        this.socket.pause()
      }
      if (unwritten > 0 && !this.drainArmed) {
        this.drainArmed = true
        this.socket.once('drain', () => {
          this.drainArmed = false
          this.checkOutput()
        })
      }
    } else if (this.outputPaused) {
      this.outputPaused = false
      if (!this.closing) this.socket.resume()
    }
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
    if (this.closing && this.head === q.length) this.endAfterWrites()
    else if (this.outputPaused || this.socket.writableLength > this.clientLimits.outputPauseBytes) this.checkOutput()
  }

  /** Ends the connection once every queued reply has been written (QUIT). */
  closeAfterReplies(): void {
    this.closing = true
    if (this.head === this.queue.length) this.endAfterWrites()
  }

  /**
   * Sends what is written, then closes. A socket closed with unread input makes the kernel answer with
   * a reset and drop the reply still unsent, so the input left is read and dropped (onData ignores it
   * once closing) until the client closes too, for at most LINGER_MS and LINGER_BYTES: a client still
   * sending cannot keep the connection open.
   */
  private endAfterWrites(): void {
    if (this.ending) return
    this.ending = true
    const socket = this.socket
    let dropped = 0
    const close = () => {
      clearTimeout(timer)
      socket.destroy()
    }
    const timer = setTimeout(close, LINGER_MS)
    timer.unref()
    socket.on('data', (chunk: Buffer) => {
      dropped += chunk.length
      if (dropped > LINGER_BYTES) close()
    })
    socket.once('end', close)
    socket.end()
    socket.resume()
  }

  pendingReplies(): number {
    return this.queue.length - this.head
  }
}
