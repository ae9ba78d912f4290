import {Socket} from 'node:net'
import {connect as tlsConnect} from 'node:tls'
import {authArgs, defaultSecurity, migrateAuthArgs, type BackendSecurity} from '../backends/credentials.js'
import {ReplyScanner} from './resp.js'
import {writeBatch} from './write.js'

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

/**
 * One long-lived pipelined connection to a Redis server. Requests from many clients are queued and
 * written once per event-loop turn (setImmediate), so one syscall carries many clients' commands;
 * replies come back in order and are matched to the queue. If the server goes away every waiting
 * request fails with `ERR backend <addr> unavailable` and the connection is retried with backoff.
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
  /** AUTH sent, reply not yet in: nothing else is written (it would run as the server's default user). */
  private authPending = false

  constructor(
    readonly addr: string,
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
    const h = this.handlers[this.head]
    if (!h) return // a reply with no request: ignore (cannot happen with a well-behaved server)
    this.handlers[this.head++] = undefined as unknown as ReplyHandler
    if (this.head > 1024 && this.head * 2 > this.handlers.length) {
      this.handlers = this.handlers.slice(this.head)
      this.head = 0
    }
    this.answered++
    h(raw)
  }

  private onClose(sock: Socket): void {
    if (this.socket !== sock) return
    this.socket = null
    this.state = 'down'
    const waiting = this.handlers.slice(this.head)
    this.handlers = []
    this.head = 0
    this.outbox = []
    const reason = `ERR backend ${this.addr} unavailable${this.lastError ? ` (${this.lastError})` : ''}`
    for (const h of waiting) {
      this.answered++
      h(null, reason)
    }
    this.checkDrain()
    if (waiting.length) afterReplies()
    if (!this.closed) {
      this.reconnectTimer = setTimeout(() => this.connect(), this.reconnectDelay)
      this.reconnectTimer.unref()
      this.reconnectDelay = Math.min(this.reconnectDelay * 2, RECONNECT_MAX_MS)
    }
  }

  /** Queues one raw request; handler gets its reply. Fails at once while the server is down. */
  send(raw: Buffer, handler: ReplyHandler): void {
    this.sent++
    if (this.state === 'down' || !this.socket) {
      this.answered++
      handler(null, `ERR backend ${this.addr} unavailable${this.lastError ? ` (${this.lastError})` : ''}`)
      return
    }
    this.handlers.push(handler)
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

  constructor(private readonly perServer: number) {}

  get(addr: string, sessionId: number): BackendConn {
    let list = this.conns.get(addr)
    if (!list) {
      list = []
      for (let i = 0; i < this.perServer; i++) list.push(new BackendConn(addr))
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

  status(): {addr: string; state: string; inFlight: number; lastError: string}[] {
    const out = []
    for (const [addr, list] of this.conns) {
      const up = list.filter((c) => c.state === 'up').length
      out.push({
        addr,
        state: up === list.length ? 'up' : up === 0 ? 'down' : 'degraded',
        inFlight: list.reduce((n, c) => n + c.inFlight(), 0),
        lastError: list.map((c) => c.lastError).find(Boolean) ?? '',
      })
    }
    return out
  }

  closeAll(): void {
    for (const list of this.conns.values()) for (const c of list) c.close()
    this.conns.clear()
  }
}
