import {createServer, type Server, type Socket} from 'node:net'
import {getHeapStatistics} from 'node:v8'
import {createServer as createTlsServer} from 'node:tls'
import {ConflictError, listenRefused} from '../errors.js'
import type {Coordinator, Lease, Op, Watcher} from '../coord/types.js'
import {PrefixMirror} from '../coord/prefix-mirror.js'
import {TopologyStore} from '../coord/topology-store.js'
import {topologyProblem, type ProxyInfo} from '../topology/model.js'
import {BackendPool, DEFAULT_BACKEND_TIMEOUT_MS, setAfterRepliesHook} from '../resp/backend.js'
import {dispatch, unpark, type DispatchContext} from './dispatch.js'
import {answerLocal, REDIS_COMPAT_VERSION, RSTORE_VERSION, type LocalHost} from './local.js'
import {ProxyMetrics} from './metrics.js'
import {DEFAULT_LIMITS, encodeError, type Limits, type Request} from '../resp/resp.js'
import {buildRoutingTable, type RoutingTable} from './routing.js'
import {DEFAULT_CLIENT_LIMITS, flushDirtySessions, Session, type ClientLimits, type ReplySlot, type SessionHost} from './session.js'
import {DbGroupExecutor} from './dbgroup-exec.js'
import {RuleRouter} from './rule-route.js'

/**
 * The default ceiling on what all clients together may hold: a quarter of the V8 heap limit, so that
 * parsed arguments (Buffer objects on the heap) can never grow the process to its heap limit.
 */
export const DEFAULT_MAXMEMORY_CLIENTS = Math.floor(getHeapStatistics().heap_size_limit / 4)

export interface ProxyOptions {
  id: string
  host: string
  port: number
  httpAddr: string
  password?: string
  limits: Limits
  /** Per-client query and output buffer bounds (docs/proxy-limits.md). */
  clientLimits: ClientLimits
  /** All clients together may hold this many bytes; past it the biggest are closed (Redis: maxmemory-clients). */
  maxMemoryClients: number
  maxClients: number
  /** Close client connections idle this long (0 = never), seconds. */
  idleTimeoutSec: number
  /** Connections per backend server. */
  backendConnections: number
  /** A backend request with no reply this long fails and its server is marked down (0 = wait forever), ms. */
  backendTimeoutMs: number
  /** Lease TTL: how long the proxy survives without reaching the coordinator. */
  leaseTtlSec: number
  /** The id whose control key (`proxyctl/<id>`) says online/offline: shared by `--cpu` workers. */
  controlId?: string
  /** Reset the control key to offline at start (Reborn: a started proxy is offline). */
  resetControl?: boolean
  /** Commands refused to clients (Redis's rename-command spirit), any case; docs/proxy-fanout.md. */
  denyCommands?: string[]
  /** Serve clients over TLS with this certificate (PEM) instead of plain TCP. */
  tls?: {cert: Buffer; key: Buffer}
}

export const DEFAULT_PROXY_OPTIONS: Omit<ProxyOptions, 'id' | 'host' | 'port' | 'httpAddr'> = {
  limits: DEFAULT_LIMITS,
  clientLimits: DEFAULT_CLIENT_LIMITS,
  maxMemoryClients: DEFAULT_MAXMEMORY_CLIENTS,
  maxClients: 10_000,
  idleTimeoutSec: 0,
  backendConnections: 2,
  backendTimeoutMs: DEFAULT_BACKEND_TIMEOUT_MS,
  leaseTtlSec: 5,
}

type Log = (line: string) => void

/** A client holding less than this is not worth a scan of every client when it grows. */
const CLIENT_MEMORY_SCAN_BYTES = 1024 * 1024

/** A request waits at most this long for a held slot (only a mover that died mid-step holds longer). */
const PARK_MAX_MS = 30_000

/**
 * The proxy: accepts Redis clients, routes their commands by slot to group masters, and follows the
 * topology in the coordinator (README \"The proxy\"; docs/architecture.md rules 3-6).
 */
export class Proxy implements SessionHost, LocalHost {
  readonly store: TopologyStore
  readonly metrics = new ProxyMetrics()
  readonly pool: BackendPool
  private server: Server | null = null
  private readonly sessionsById = new Map<number, Session>()
  private nextSessionId = 1
  private ctx: DispatchContext
  private lease: Lease | null = null
  private watchers: Watcher[] = []
  /** Every key of the product, kept by a watch: the topology and the rules config are read from it. */
  private mirror: PrefixMirror | null = null
  private online = false
  private fenced = false
  private applying: Promise<void> | null = null
  private applyAgain = false
  private stopped = false
  private parkTimer: NodeJS.Timeout | null = null
  private memoryTimer: NodeJS.Timeout | null = null
  readonly startedAt = Date.now()
  /** Why the newest topology was refused, if it was. */
  topologyError = ''

  constructor(
    readonly coord: Coordinator,
    readonly product: string,
    readonly opts: ProxyOptions,
    private readonly log: Log = () => {},
  ) {
    this.store = new TopologyStore(coord, product)
    this.pool = new BackendPool(opts.backendConnections, opts.backendTimeoutMs)
    this.ctx = {
      table: {epoch: 0, slots: buildRoutingTable({epoch: 0, slots: [], groups: new Map()}).slots, masters: [], groups: []},
      pool: this.pool,
      local: (session, spec, args, slot) => answerLocal(this, session, spec, args, slot),
      refusal: 'ERR proxy is offline',
      rules: new DbGroupExecutor(),
      parked: [],
      denied: new Set((opts.denyCommands ?? []).map((c) => c.toLowerCase())),
    }
    setAfterRepliesHook(flushDirtySessions)
  }

  get password(): string | undefined {
    return this.opts.password
  }

  get table(): RoutingTable {
    return this.ctx.table
  }

  /** Registers (offline), loads the topology, starts watching, then listens. */
  async start(): Promise<void> {
    await this.register(true)
    this.mirror = await PrefixMirror.start(this.coord, this.store.prefix, () => void this.applyTopology(), (key) => this.store.isTopologyKey(key))
    this.watchers.push(this.mirror)
    this.watchers.push(
      await this.coord.watch(this.controlKey(), await this.coord.revision(), () => void this.applyDesiredState()),
    )
    // The mover publishes its progress here; /metrics shows it (rstore_migration{field=...}).
    this.watchers.push(
      await this.coord.watch(this.store.keys.migrationProgress, await this.coord.revision(), (ev) => this.onProgress(ev.value)),
    )
    await this.applyTopology()
    // A --cpu worker started again after a crash obeys the shared control key at once (the first
    // proxy of an id has just reset it to offline, so for it this changes nothing).
    await this.applyDesiredState()
    await this.listen()
    this.parkTimer = setInterval(() => {
      const oldest = this.ctx.parked[0]
      if (oldest && Date.now() - oldest.since > PARK_MAX_MS) {
        unpark(this.ctx, PARK_MAX_MS)
        flushDirtySessions()
      }
    }, 1000)
    this.parkTimer.unref()
    // Replies pile up without a read event: the ceiling is also checked on a timer.
    this.memoryTimer = setInterval(() => this.enforceClientMemory(), 100)
    this.memoryTimer.unref()
  }

  private onProgress(value: string): void {
    try {
      const parsed = value ? (JSON.parse(value) as Record<string, unknown>) : {}
      this.metrics.migration = Object.fromEntries(
        Object.entries(parsed).filter((e): e is [string, number] => typeof e[1] === 'number'),
      )
    } catch {
      this.metrics.migration = {}
    }
  }

  private controlKey(): string {
    return this.store.keys.proxyControl(this.opts.controlId ?? this.opts.id)
  }

  private recordKey(): string {
    return this.store.keys.proxy(this.opts.id)
  }

  private record(): ProxyInfo {
    return {
      id: this.opts.id,
      addr: `${this.opts.host}:${this.opts.port}`,
      httpAddr: this.opts.httpAddr,
      state: this.online ? 'online' : 'offline',
      appliedEpoch: this.ctx.table.epoch,
      pid: process.pid,
      startedAt: this.startedAt,
      ...(this.topologyError ? {error: this.topologyError} : {}),
      ...(this.opts.controlId && this.opts.controlId !== this.opts.id ? {controlId: this.opts.controlId} : {}),
    }
  }

  /** Creates the proxy's record under a fresh lease. At first start the desired state is reset to offline. */
  private async register(first: boolean): Promise<void> {
    const key = this.recordKey()
    // A proxy killed with SIGKILL keeps its record until its lease expires: wait that long at most.
    const deadline = Date.now() + (this.opts.leaseTtlSec + 2) * 1000
    for (;;) {
      const lease = await this.coord.grantLease(this.opts.leaseTtlSec)
      const ops: Op[] = [{type: 'put', key, value: JSON.stringify(this.record()), lease: lease.id}]
      if (first && this.opts.resetControl !== false) ops.push({type: 'put', key: this.controlKey(), value: JSON.stringify({state: 'offline'})})
      const res = await this.coord.txn([{key, modRevision: 0}], ops)
      if (res.succeeded) {
        this.lease = lease
        lease.onLost(() => void this.onLeaseLost())
        return
      }
      await lease.revoke().catch(() => {})
      if (Date.now() > deadline) {
        const existing = await this.coord.get(key)
        const pid = existing ? (JSON.parse(existing.value) as ProxyInfo).pid : '?'
        throw new ConflictError(
          `proxy id '${this.opts.id}' is already registered (pid ${pid}); choose another --id or stop that proxy first`,
        )
      }
      await new Promise((r) => setTimeout(r, 250))
    }
  }

  /** Rule 5: without a coordinator session the proxy must not route (it may hold a stale topology). */
  private async onLeaseLost(): Promise<void> {
    if (this.stopped) return
    this.fenced = true
    this.updateRefusal()
    this.log(`lost coordinator session: refusing routed commands until registered again`)
    while (!this.stopped) {
      try {
        await this.register(false)
        await this.applyTopology(true)
        await this.applyDesiredState()
        this.fenced = false
        this.updateRefusal()
        this.log(`registered again at epoch ${this.ctx.table.epoch}`)
        return
      } catch (err) {
        this.log(`re-register failed: ${(err as Error).message}`)
        await new Promise((r) => setTimeout(r, 500))
      }
    }
  }

  private updateRefusal(): void {
    this.ctx.refusal = this.fenced
      ? 'ERR proxy lost its coordinator session; retry shortly'
      : this.online
        ? ''
        : 'ERR proxy is offline'
  }

  private async applyDesiredState(): Promise<void> {
    const kv = await this.coord.get(this.controlKey())
    const want = kv ? (JSON.parse(kv.value) as {state: string}).state === 'online' : false
    if (want === this.online) return
    this.online = want
    this.updateRefusal()
    if (!want) await this.pool.drainAll()
    await this.publish()
    this.log(`proxy is now ${want ? 'online' : 'offline'}`)
  }

  /** Writes the proxy's record (state, applied epoch) under its lease. */
  private async publish(): Promise<void> {
    if (!this.lease || this.fenced) return
    await this.coord.txn([], [{type: 'put', key: this.recordKey(), value: JSON.stringify(this.record()), lease: this.lease.id}])
  }

  /**
   * Loads the topology and switches routing to it, then waits until every request sent under the old
   * routing is answered (rule 4's drain) before acknowledging the epoch. Calls are serialized.
   */
  applyTopology(force = false): Promise<void> {
    if (this.applying) {
      this.applyAgain = true
      return this.applying
    }
    this.applying = (async () => {
      do {
        this.applyAgain = false
        try {
          // One snapshot for both the topology and the rules config. Forced (after a lost session),
          // listed afresh.
          if (force) await this.mirror?.resync()
          const kvs = this.mirror ? this.mirror.snapshot() : await this.coord.list(this.store.prefix)
          const {topo} = this.store.parseKvs(kvs)
          if (!force && topo.epoch === this.ctx.table.epoch && this.ctx.table.masters.length && !this.topologyError) continue
          force = false
          let rules: RuleRouter | undefined
          let problem = topologyProblem(topo)
          try {
            rules = RuleRouter.fromKvs(this.store, kvs, this.ctx.rules.router)
          } catch (err) {
            problem = problem ?? `rules config at epoch ${topo.epoch}: ${(err as Error).message}`
          }
          if (problem) {
            this.topologyError = `refused ${problem}; serving epoch ${this.ctx.table.epoch}`
            this.log(this.topologyError)
            await this.publish()
            continue
          }
          this.topologyError = ''
          const table = buildRoutingTable(topo)
          this.ctx.table = table
          this.ctx.rules.setRouter(rules!)
          unpark(this.ctx, PARK_MAX_MS)
          flushDirtySessions()
          this.pool.retain(new Set(table.masters.concat(this.migratingSources(table))))
          await Promise.all([this.pool.drainAll(), this.ctx.rules.drain()])
          await this.publish()
        } catch (err) {
          this.log(`topology load failed: ${(err as Error).message}`)
          await new Promise((r) => setTimeout(r, 200))
          this.applyAgain = true
        }
      } while (this.applyAgain && !this.stopped)
    })().finally(() => {
      this.applying = null
    })
    return this.applying
  }

  private migratingSources(table: RoutingTable): string[] {
    return table.slots.filter((s) => s.fromMaster).map((s) => s.fromMaster)
  }

  private listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const tls = this.opts.tls
      const server: Server = tls
        ? createTlsServer({cert: tls.cert, key: tls.key, noDelay: true}, (socket) => this.accept(socket))
        : createServer({noDelay: true}, (socket) => this.accept(socket))
      // A client that fails the TLS handshake is dropped; it never becomes a session.
      if (tls) server.on('tlsClientError', () => {})
      const refused = (err: NodeJS.ErrnoException) => reject(listenRefused('--addr', `${this.opts.host}:${this.opts.port}`, err))
      server.on('error', refused)
      server.listen(this.opts.port, this.opts.host, () => {
        server.off('error', refused)
        server.on('error', (err) => this.log(`listener error: ${err.message}`))
        const addr = server.address()
        if (addr && typeof addr === 'object') this.opts.port = addr.port
        this.server = server
        void this.publish()
        resolve()
      })
    })
  }

  private accept(socket: Socket): void {
    if (this.sessionsById.size >= this.opts.maxClients) {
      this.metrics.rejectedConnections++
      socket.end(encodeError('ERR max number of clients reached'))
      return
    }
    this.metrics.connectionsTotal++
    const id = this.nextSessionId++
    const session = new Session(id, socket, this, this.opts.limits, this.opts.password !== undefined, this.opts.clientLimits)
    this.sessionsById.set(id, session)
    if (this.opts.idleTimeoutSec > 0) {
      socket.setTimeout(this.opts.idleTimeoutSec * 1000, () => socket.destroy())
    }
  }

  handle(session: Session, req: Request): void {
    dispatch(this.ctx, session, req)
  }

  onReplyDone(slot: ReplySlot): void {
    this.metrics.observe(slot.command, performance.now() - slot.started, slot.data![0] === 0x2d)
  }

  onClose(session: Session): void {
    this.sessionsById.delete(session.id)
  }

  onAuthFailure(): void {
    this.metrics.authFailures++
  }

  onQueryGrowth(session: Session): void {
    if (session.memoryBytes() >= CLIENT_MEMORY_SCAN_BYTES) this.enforceClientMemory()
  }

  onLimitClose(session: Session, why: string): void {
    this.metrics.clientsClosedForLimits++
    this.log(`closed client ${session.id} (${session.socket.remoteAddress}:${session.socket.remotePort}): ${why}`)
  }

  /** Past --maxmemory-clients, closes the clients holding the most until the rest fit (as Redis does). */
  enforceClientMemory(): void {
    const ceiling = this.opts.maxMemoryClients
    if (ceiling <= 0) return
    let total = 0
    const big: [number, Session][] = []
    for (const s of this.sessionsById.values()) {
      if (s.closed || s.closing) continue
      const m = s.memoryBytes()
      total += m
      if (m > 0) big.push([m, s])
    }
    if (total <= ceiling) return
    big.sort((a, b) => b[0] - a[0])
    for (const [m, s] of big) {
      if (total <= ceiling) break
      s.closeForLimit(`clients hold ${total} bytes > maxmemory-clients ${ceiling}; this one held ${m}`)
      total -= m
    }
  }

  sessions(): Session[] {
    return [...this.sessionsById.values()]
  }

  masters(): string[] {
    return this.ctx.table.masters
  }

  /** The proxy's own INFO text (server, clients, stats sections). */
  info(): string {
    const up = Math.floor((Date.now() - this.startedAt) / 1000)
    const mem = process.memoryUsage()
    return [
      '# Server',
      `redis_version:${REDIS_COMPAT_VERSION}`,
      `rstore_version:${RSTORE_VERSION}`,
      'redis_mode:standalone',
      `proxy_id:${this.opts.id}`,
      `process_id:${process.pid}`,
      `tcp_port:${this.opts.port}`,
      `uptime_in_seconds:${up}`,
      `topology_epoch:${this.ctx.table.epoch}`,
      `proxy_state:${this.fenced ? 'fenced' : this.online ? 'online' : 'offline'}`,
      '',
      '# Clients',
      `connected_clients:${this.sessionsById.size}`,
      `maxclients:${this.opts.maxClients}`,
      '',
      '# Memory',
      `used_memory:${mem.heapUsed}`,
      `used_memory_rss:${mem.rss}`,
      '',
      '# Persistence',
      'loading:0',
      '',
      '# Stats',
      `total_connections_received:${this.metrics.connectionsTotal}`,
      `total_commands_processed:${this.metrics.totalCommands}`,
      `total_error_replies:${this.metrics.errors}`,
      `rejected_connections:${this.metrics.rejectedConnections}`,
      '',
      '# Replication',
      'role:master',
      'connected_slaves:0',
      '',
    ].join('\r\n')
  }

  status(): Record<string, unknown> {
    return {
      id: this.opts.id,
      addr: `${this.opts.host}:${this.opts.port}`,
      state: this.fenced ? 'fenced' : this.online ? 'online' : 'offline',
      epoch: this.ctx.table.epoch,
      topologyError: this.topologyError || undefined,
      clients: this.sessionsById.size,
      commands: this.metrics.totalCommands,
      uptimeSec: Math.floor((Date.now() - this.startedAt) / 1000),
      backends: this.pool.status(),
    }
  }

  renderMetrics(): string {
    return this.metrics.render({
      connections: this.sessionsById.size,
      epoch: this.ctx.table.epoch,
      online: this.online && !this.fenced,
      backends: this.pool.status(),
    })
  }

  get port(): number {
    return this.opts.port
  }

  async stop(): Promise<void> {
    this.stopped = true
    if (this.parkTimer) clearInterval(this.parkTimer)
    if (this.memoryTimer) clearInterval(this.memoryTimer)
    for (const w of this.watchers) await w.close().catch(() => {})
    this.server?.close()
    for (const s of this.sessionsById.values()) s.socket.destroy()
    this.pool.closeAll()
    await this.ctx.rules.close()
    await this.lease?.revoke().catch(() => {})
  }
}
