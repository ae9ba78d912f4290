import {Socket} from 'node:net'
import {connect as tlsConnect} from 'node:tls'
import {authArgs, defaultSecurity, migrateAuthArgs, type BackendSecurity} from './credentials.js'
import {ReplyScanner} from './resp.js'
import {writeBatch} from './write.js'

/** The first bytes of RESP2 and RESP3 replies. */
const RESP_TYPE_BYTE: boolean[] = []
for (const c of '+-:$*_,#!=(%~>|') RESP_TYPE_BYTE[c.charCodeAt(0)] = true

/** Called once per request with the raw reply bytes, or with an error text (no leading '-'). */
export type ReplyHandler = (raw: Buffer | null, error?: string) => void

/** Runs after each batch of backend replies (the proxy flushes client sockets there). */
let afterReplies: () => void = () => {}
export function setAfterRepliesHook(fn: () => void): void {
  afterReplies = fn
}

/** Called when a server refuses the connection's AUTH (the proxy re-creates its ACL user there). */
let authRefused: (addr: string, error: string) => void = () => {}
export function setAuthRefusedHook(fn: (addr: string, error: string) => void): void {
  authRefused = fn
}

const RECONNECT_MIN_MS = 50
const RECONNECT_MAX_MS = 3000
/** A request with no reply past this fails and its connection is replaced (--backend-timeout). */
export const DEFAULT_BACKEND_TIMEOUT_MS = 3000
/** The stall check runs this many times per timeout period: a stall is caught within 1.2 timeouts. */
const CHECKS_PER_TIMEOUT = 5
const PING = Buffer.from('*1\r\n$4\r\nPING\r\n')
const MIGRATE_HEAD = Buffer.from('\r\n$7\r\nMIGRATE\r\n')

/**
 * One long-lived pipelined connection to a Redis server. Requests from many clients are queued and
 * written once per event-loop turn (setImmediate), so one syscall carries many clients' commands;
 * replies come back in order and are matched to the queue. If the server goes away every waiting
 * request fails with `ERR backend <addr> unavailable` and the connection is retried with backoff.
 *
 * A server that keeps the connection but stops answering (SIGSTOP, a hung host) is caught by a stall
 * check: when requests wait and nothing at all came back for `timeoutMs`, every waiting request fails
 * with `ERR backend <addr> timed out after <ms> ms`, the connection is closed (later replies could no
 * longer be matched) and reopened, and it counts as down until a PING on the new connection answers.
 * Progress is any byte read, so a long pipeline or a large reply that keeps arriving never times out;
 * only the head of the queue is timed, from when it became the head.
 */
export class BackendConn {
  readonly host: string
  readonly port: number
  private socket: Socket | null = null
  private handlers: ReplyHandler[] = []
  private head = 0
  private outbox: Buffer[] = []
  private flushScheduled = false
  private readonly scanner = new ReplyScanner()
  private reconnectDelay = RECONNECT_MIN_MS
  private reconnectTimer: NodeJS.Timeout | null = null
  private closed = false
  state: 'connecting' | 'up' | 'down' = 'down'
  /** Requests sent and answered so far: the barrier waits for answered to reach a sent mark. */
  sent = 0
  answered = 0
  lastError = ''
  private drainWaiters: {mark: number; resolve: () => void}[] = []
  /** Extra time each queued request may take (MIGRATE's own timeout), parallel to handlers. */
  private extraMs: number[] = []
  private stallTimer: NodeJS.Timeout | null = null
  private stallMark = -1
  private stalledMs = 0
  /** Set by a timeout: the connection is down until a PING on a new connection answers. */
  private probing = false
  /** Requests failed by the stall check since start (rstore_backend_timeouts_total). */
  timeouts = 0

  /** AUTH sent, reply not yet in: nothing else is written (it would run as the server's default user). */
  private authPending = false

  constructor(
    readonly addr: string,
    readonly timeoutMs = DEFAULT_BACKEND_TIMEOUT_MS,
    private readonly onTimeout: (conn: BackendConn, text: string) => void = () => {},
    /** Credential and TLS (docs/security.md); default: the process's (the proxy's ACL user in a proxy). */
    private readonly security: BackendSecurity = defaultSecurity(),
  ) {
    const i = addr.lastIndexOf(':')
    this.host = addr.slice(0, i)
    this.port = Number(addr.slice(i + 1))
    this.connect()
  }

  private connect(): void {
    if (this.closed) return
    this.state = 'connecting'
    this.scanner.reset()
    const tls = this.security.tls
    const sock: Socket = tls ? tlsConnect({...tls, host: this.host, port: this.port, servername: tls.servername ?? this.host}) : new Socket()
    this.socket = sock
    sock.setNoDelay(true)
    sock.setKeepAlive(true, 30_000)
    sock.on(tls ? 'secureConnect' : 'connect', () => {
      this.state = 'up'
      this.reconnectDelay = RECONNECT_MIN_MS
    })
    sock.on('data', (chunk: Buffer) => {
      this.scanner.feed(chunk, this.onReply)
      if (this.drainWaiters.length) this.checkDrain()
      afterReplies()
    })
    sock.on('error', (err) => {
      this.lastError = err.message
    })
    sock.on('close', () => this.onClose(sock))
    if (!tls) sock.connect(this.port, this.host)
    // AUTH goes first in the pipeline, so every request queued behind it runs as this user; a refused
    // AUTH closes the connection and its queued requests fail with the server's words.
    const auth = authArgs(this.security)
    this.authPending = false
    if (auth) {
      this.sent++
      this.extraMs.push(0)
      this.handlers.push((raw) => {
        if (this.socket !== sock) return
        if (raw && raw[0] === 45) {
          this.lastError = `AUTH as ${this.security.user ?? 'default'} refused: ${raw.toString('utf8', 1, raw.length - 2)}`
          authRefused(this.addr, this.lastError)
          sock.destroy()
          return
        }
        this.authPending = false
        if (this.outbox.length && !this.flushScheduled) {
          this.flushScheduled = true
          setImmediate(this.flush)
        }
      })
      sock.write(encodeAuth(auth))
      this.authPending = true
    }
  }

  /** `AUTH2 user pass` for a MIGRATE sent on this connection, so the server logs in to the target as this user. */
  migrateAuth(): string[] {
    return migrateAuthArgs(this.security)
  }

  private readonly onReply = (raw: Buffer): void => {
    // A peer that is not Redis (a web server on a mistyped address) must not have its bytes passed
    // to clients as replies: the connection is dropped and its requests fail with the reason.
    if (!RESP_TYPE_BYTE[raw[0]!]) {
      this.lastError = `not a Redis server: it answered ${JSON.stringify(raw.toString('latin1', 0, Math.min(raw.length, 40)).trim())}`
      this.socket?.destroy()
      return
    }
    const h = this.handlers[this.head]
    if (!h) return // a reply with no request: ignore (cannot happen with a well-behaved server)
    this.handlers[this.head++] = undefined as unknown as ReplyHandler
    if (this.head > 1024 && this.head * 2 > this.handlers.length) {
      this.handlers = this.handlers.slice(this.head)
      this.extraMs = this.extraMs.slice(this.head)
      this.head = 0
    }
    this.answered++
    h(raw)
  }

  private onClose(sock: Socket): void {
    this.down(sock, this.unavailable())
  }

  private unavailable(): string {
    return `ERR backend ${this.addr} unavailable${this.lastError ? ` (${this.lastError})` : ''}`
  }

  /** Fails every waiting request with reason and schedules a reconnect (once per socket). */
  private down(sock: Socket, reason: string): void {
    if (this.socket !== sock) return
    this.socket = null
    this.state = 'down'
    const waiting = this.handlers.slice(this.head)
    this.handlers = []
    this.extraMs = []
    this.head = 0
    this.outbox = []
    this.stopStallCheck()
    for (const h of waiting) {
      this.answered++
      h(null, reason)
    }
    this.checkDrain()
    if (waiting.length) afterReplies()
    if (!this.closed) {
      this.reconnectTimer = setTimeout(() => this.reopen(), this.reconnectDelay)
      this.reconnectTimer.unref()
      this.reconnectDelay = Math.min(this.reconnectDelay * 2, RECONNECT_MAX_MS)
    }
  }

  private reopen(): void {
    this.connect()
    if (this.probing && this.socket) this.probe()
  }

  /** After a timeout: one PING first on the new connection; its answer (any reply) makes it up again. */
  private probe(): void {
    this.sent++
    this.enqueue(PING, (raw) => {
      if (raw) this.probing = false
    })
  }

  /** Up: connected and, after a timeout, answering again. */
  isUp(): boolean {
    return this.state === 'up' && !this.probing
  }

  /** Queues one raw request; handler gets its reply. Fails at once while the server is down. */
  send(raw: Buffer, handler: ReplyHandler): void {
    this.sent++
    if (this.state === 'down' || !this.socket || this.probing) {
      this.answered++
      handler(null, this.unavailable())
      return
    }
    this.enqueue(raw, handler)
  }

  private enqueue(raw: Buffer, handler: ReplyHandler): void {
    this.handlers.push(handler)
    this.extraMs.push(this.timeoutMs > 0 ? migrateTimeoutMs(raw) : 0)
    if (this.timeoutMs > 0 && !this.stallTimer) this.startStallCheck()
    this.outbox.push(raw)
    if (!this.flushScheduled) {
      this.flushScheduled = true
      setImmediate(this.flush)
    }
  }

  private readonly flush = (): void => {
    this.flushScheduled = false
    const sock = this.socket
    const out = this.outbox
    if (!sock || out.length === 0 || this.authPending) return
    this.outbox = []
    writeBatch(sock, out)
  }

  private startStallCheck(): void {
    this.stallMark = -1
    this.stalledMs = 0
    const every = Math.max(1, Math.ceil(this.timeoutMs / CHECKS_PER_TIMEOUT))
    this.stallTimer = setInterval(() => this.checkStall(every), every)
    this.stallTimer.unref()
  }

  private stopStallCheck(): void {
    if (this.stallTimer) clearInterval(this.stallTimer)
    this.stallTimer = null
  }

  /** Every timeoutMs/5 while requests wait: no byte read and no reply since the last check is a stall. */
  private checkStall(every: number): void {
    const sock = this.socket
    if (!sock || this.head >= this.handlers.length) return this.stopStallCheck()
    const mark = this.answered + sock.bytesRead
    if (mark !== this.stallMark) {
      this.stallMark = mark
      this.stalledMs = 0
      return
    }
    this.stalledMs += every
    if (this.stalledMs < this.timeoutMs + this.extraMs[this.head]!) return
    // Timers run before the poll phase: replies may sit unread in the socket. Decide after I/O.
    setImmediate(() => {
      if (this.socket === sock && this.answered + sock.bytesRead === mark && this.head < this.handlers.length) this.timedOut(sock)
    })
  }

  private timedOut(sock: Socket): void {
    const text = `timed out after ${this.timeoutMs + this.extraMs[this.head]!} ms`
    this.markTimedOut(text)
    this.onTimeout(this, text)
  }

  /**
   * Fails what waits, closes the connection and reopens it probing. Also called by the pool on the
   * other connections of a server one of them timed out on: Redis runs one command at a time, so a
   * stall of one is a stall of all.
   */
  markTimedOut(text: string): void {
    const sock = this.socket
    this.lastError = text
    this.probing = true
    if (!sock) return // a reconnect is scheduled already; it probes
    this.timeouts += this.handlers.length - this.head
    this.down(sock, `ERR backend ${this.addr} ${text}`)
    sock.destroy()
  }

  /** Down since a timeout, waiting for a PING to answer. */
  get isProbing(): boolean {
    return this.probing
  }

  /** Resolves when every request sent so far has been answered (or failed). */
  drain(): Promise<void> {
    const mark = this.sent
    if (this.answered >= mark) return Promise.resolve()
    return new Promise((resolve) => this.drainWaiters.push({mark, resolve}))
  }

  private checkDrain(): void {
    if (!this.drainWaiters.length) return
    this.drainWaiters = this.drainWaiters.filter((w) => {
      if (this.answered >= w.mark) {
        w.resolve()
        return false
      }
      return true
    })
  }

  /** Requests waiting for a reply. */
  inFlight(): number {
    return this.sent - this.answered
  }

  close(): void {
    this.closed = true
    this.stopStallCheck()
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer)
    this.socket?.destroy()
  }
}

function encodeAuth(args: string[]): Buffer {
  return Buffer.from(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`)
}

/**
 * A few connections per backend server. A client session always uses the same connection of a
 * server (by its id), so its commands to one server keep their order.
 */
export class BackendPool {
  private readonly conns = new Map<string, BackendConn[]>()

  constructor(
    private readonly perServer: number,
    private readonly timeoutMs = DEFAULT_BACKEND_TIMEOUT_MS,
  ) {}

  get(addr: string, sessionId: number): BackendConn {
    let list = this.conns.get(addr)
    if (!list) {
      list = []
      const siblings = list
      const onTimeout = (from: BackendConn, text: string) => {
        for (const c of siblings) if (c !== from && !c.isProbing) c.markTimedOut(text)
      }
      for (let i = 0; i < this.perServer; i++) list.push(new BackendConn(addr, this.timeoutMs, onTimeout))
      this.conns.set(addr, list)
    }
    return list[sessionId % list.length]!
  }

  /** Closes connections to servers that are no longer in the topology. */
  retain(addrs: Set<string>): void {
    for (const [addr, list] of this.conns) {
      if (!addrs.has(addr)) {
        for (const c of list) c.close()
        this.conns.delete(addr)
      }
    }
  }

  /** Waits until every request sent so far to any server has been answered. */
  async drainAll(): Promise<void> {
    const waits: Promise<void>[] = []
    for (const list of this.conns.values()) for (const c of list) waits.push(c.drain())
    await Promise.all(waits)
  }

  status(): {addr: string; state: string; inFlight: number; lastError: string; timeouts: number}[] {
    const out = []
    for (const [addr, list] of this.conns) {
      const up = list.filter((c) => c.isUp()).length
      out.push({
        addr,
        state: up === list.length ? 'up' : up === 0 ? 'down' : 'degraded',
        inFlight: list.reduce((n, c) => n + c.inFlight(), 0),
        lastError: list.map((c) => c.lastError).find(Boolean) ?? '',
        timeouts: list.reduce((n, c) => n + c.timeouts, 0),
      })
    }
    return out
  }

  closeAll(): void {
    for (const list of this.conns.values()) for (const c of list) c.close()
    this.conns.clear()
  }
}

/**
 * MIGRATE (sent by the proxy for keys of a migrating slot) carries its own I/O timeout, and the
 * source server is busy for up to that long: the request may take that much more. 0 for the rest.
 * Reads `*N\r\n$7\r\nMIGRATE\r\n` then the 5th argument (host port key db timeout).
 */
export function migrateTimeoutMs(raw: Buffer): number {
  if (raw.length < 40 || raw[0] !== 0x2a) return 0
  const at = raw.indexOf(0x0d)
  if (at < 0 || at > 12 || raw.compare(MIGRATE_HEAD, 0, MIGRATE_HEAD.length, at, at + MIGRATE_HEAD.length) !== 0) return 0
  let pos = at + MIGRATE_HEAD.length
  let value = ''
  for (let i = 0; i < 5; i++) {
    if (raw[pos] !== 0x24) return 0
    const eol = raw.indexOf(0x0d, pos)
    const len = Number(raw.toString('latin1', pos + 1, eol))
    if (!Number.isInteger(len) || len < 0) return 0
    value = raw.toString('latin1', eol + 2, eol + 2 + len)
    pos = eol + 2 + len + 2
  }
  const ms = Number(value)
  return Number.isFinite(ms) && ms > 0 ? ms : 0
}
