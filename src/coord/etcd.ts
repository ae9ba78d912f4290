/**
 * The etcd coordinator: the Coordinator interface on etcd v3 through the `etcd3` client.
 *
 * - txn(): one etcd Txn (compares on mod revision / value, ops put / delete / delete range);
 * - watch(): an etcd watch from revision afterRevision+1, events delivered once each, in order (events
 *   already delivered are skipped if the client reconnects and replays);
 * - leases: etcd leases kept alive by the client. onLost fires when etcd says the lease is gone, or
 *   when no keep-alive has been confirmed for a whole TTL (etcd may have expired it by then: a holder
 *   must behave as if it had, see docs/architecture.md rule 5 on fencing).
 */
import etcd3 from 'etcd3'
import type {ICompare, IKeyValue, IRequestOp, Lease as EtcdLease, Watcher as EtcdWatcher, IWatchResponse} from 'etcd3'
import {UnreachableError, ValidationError} from '../errors.js'
import {CompactedError, CoordinatorClosedError, keyBytes, LeaseNotFoundError, prefixEnd, reportWatchError, validateOps} from './keys.js'
import {LeaseLoss} from './lease-loss.js'
import type {Compare, Coordinator, KeyValue, Lease, Op, TxnResult, WatchEvent, Watcher} from './types.js'

const {Etcd3, EtcdLeaseInvalidError, GRPCDeadlineExceededError, GRPCUnavailableError, isRecoverableError} = etcd3
type Etcd3Client = InstanceType<typeof Etcd3>

export interface EtcdOptions {
  /** A first request must be answered within this time or connect() fails (ms). Default 3000. */
  connectTimeoutMs?: number
  /** Deadline of every later request (ms). Default 10000. */
  requestTimeoutMs?: number
}

const ZERO = Buffer.from([0])
const LIST_PAGE = 1000

function toKeyValue(kv: IKeyValue): KeyValue {
  const out: KeyValue = {
    key: kv.key.toString('utf8'),
    value: kv.value.toString('utf8'),
    createRevision: Number(kv.create_revision),
    modRevision: Number(kv.mod_revision),
  }
  if (kv.lease && kv.lease !== '0') out.lease = String(kv.lease)
  return out
}

/** [start, end) of "every key starting with prefix" in etcd's terms. */
function prefixRange(prefix: string): {key: Buffer; range_end: Buffer} {
  const start = keyBytes(prefix)
  if (start.length === 0) return {key: ZERO, range_end: ZERO}
  return {key: start, range_end: prefixEnd(start) ?? ZERO}
}

class TimeoutError extends Error {
  override name = 'TimeoutError'
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new TimeoutError(`${what} timed out after ${ms} ms`)), ms)
      timer.unref()
    }),
  ]).finally(() => clearTimeout(timer))
}

export class EtcdCoordinator implements Coordinator {
  readonly kind = 'etcd' as const
  private closed = false
  private readonly leases = new Set<EtcdLeaseHandle>()
  private readonly watchers = new Set<EtcdWatchHandle>()

  private constructor(
    readonly endpoints: string[],
    private readonly client: Etcd3Client,
    private readonly opts: Required<EtcdOptions>,
  ) {}

  /** Connects and makes one real request: fails with UnreachableError if etcd does not answer in time. */
  static async connect(endpoints: string[], options: EtcdOptions = {}): Promise<EtcdCoordinator> {
    const hosts = endpoints.map((e) => e.trim()).filter(Boolean)
    if (hosts.length === 0) throw new ValidationError('no etcd endpoint given: set coordinator_addr to e.g. http://127.0.0.1:2379')
    for (const h of hosts) {
      if (/^https:/i.test(h)) throw new ValidationError(`etcd endpoint '${h}': TLS is not supported, use http://`)
    }
    const opts: Required<EtcdOptions> = {
      connectTimeoutMs: options.connectTimeoutMs ?? 3000,
      requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
    }
    const client = new Etcd3({hosts, dialTimeout: opts.connectTimeoutMs})
    try {
      await withTimeout(
        client.kv.range({key: ZERO, count_only: true}, {deadline: new Date(Date.now() + opts.connectTimeoutMs)}),
        opts.connectTimeoutMs,
        'etcd request',
      )
    } catch (err) {
      client.close()
      throw new UnreachableError(
        `etcd at ${hosts.join(', ')} did not answer within ${opts.connectTimeoutMs / 1000} s (${(err as Error).message}): ` +
          'check coordinator_addr and that etcd is running',
      )
    }
    return new EtcdCoordinator(hosts, client, opts)
  }

  /** Network-level failures become UnreachableError (one clear line in the CLI); others pass through. */
  private async call<T>(what: string, p: Promise<T>): Promise<T> {
    try {
      return await p
    } catch (err) {
      const e = err as Error
      const unreachable =
        e instanceof GRPCUnavailableError ||
        e instanceof GRPCDeadlineExceededError ||
        e instanceof TimeoutError ||
        (typeof e === 'object' && e !== null && isRecoverableError(e)) ||
        e?.name === 'BrokenCircuitError' ||
        /circuit/i.test(e?.message ?? '')
      if (unreachable) throw new UnreachableError(`etcd at ${this.endpoints.join(', ')} failed to ${what}: ${e.message}`)
      throw err
    }
  }

  private callOpts() {
    return {deadline: new Date(Date.now() + this.opts.requestTimeoutMs)}
  }

  private check(): void {
    if (this.closed) throw new CoordinatorClosedError(this.kind)
  }

  async get(key: string): Promise<KeyValue | null> {
    this.check()
    const res = await this.call('read a key', this.client.kv.range({key: keyBytes(key)}, this.callOpts()))
    return res.kvs.length ? toKeyValue(res.kvs[0]) : null
  }

  async list(prefix: string): Promise<KeyValue[]> {
    return (await this.listWithRevision(prefix)).kvs
  }

  async listWithRevision(prefix: string): Promise<{kvs: KeyValue[]; revision: number}> {
    this.check()
    const range = prefixRange(prefix)
    const out: KeyValue[] = []
    let key = range.key
    let revision: string | undefined
    // Pages of LIST_PAGE keys, all read at the revision of the first page (one consistent snapshot).
    for (;;) {
      const res = await this.call(
        'list keys',
        this.client.kv.range({key, range_end: range.range_end, limit: LIST_PAGE, revision, sort_order: 'Ascend', sort_target: 'Key'}, this.callOpts()),
      )
      revision ??= res.header.revision
      for (const kv of res.kvs) out.push(toKeyValue(kv))
      if (!res.more || res.kvs.length === 0) return {kvs: out, revision: Number(revision)}
      key = Buffer.concat([res.kvs[res.kvs.length - 1].key, ZERO])
    }
  }

  async revision(): Promise<number> {
    this.check()
    const res = await this.call('read the revision', this.client.kv.range({key: ZERO, count_only: true}, this.callOpts()))
    return Number(res.header.revision)
  }

  async txn(compares: Compare[], ops: Op[]): Promise<TxnResult> {
    this.check()
    validateOps(ops)
    const compare: ICompare[] = compares.map((c) =>
      'modRevision' in c
        ? {key: keyBytes(c.key), target: 'Mod', result: 'Equal', mod_revision: c.modRevision}
        : {key: keyBytes(c.key), target: 'Value', result: 'Equal', value: Buffer.from(c.value, 'utf8')},
    )
    const success: IRequestOp[] = ops.map((op): IRequestOp => {
      if (op.type === 'put') {
        return {request_put: {key: keyBytes(op.key), value: Buffer.from(op.value, 'utf8'), lease: op.lease ?? 0}}
      }
      if (op.type === 'delete') return {request_delete_range: {key: keyBytes(op.key)}}
      return {request_delete_range: prefixRange(op.prefix)}
    })
    try {
      const res = await this.call('run a transaction', this.client.kv.txn({compare, success, failure: []}, this.callOpts()))
      return {succeeded: res.succeeded, revision: Number(res.header.revision)}
    } catch (err) {
      if (err instanceof EtcdLeaseInvalidError) {
        const put = ops.find((o) => o.type === 'put' && o.lease !== undefined) as {lease: string} | undefined
        throw new LeaseNotFoundError(put?.lease ?? '?')
      }
      throw err
    }
  }

  /** Compacts etcd's history up to revision: watches from older revisions fail (for tests). */
  async compact(revision: number): Promise<void> {
    this.check()
    await this.client.kv.compact({revision, physical: true}, this.callOpts())
  }

  async watch(prefix: string, afterRevision: number, onEvent: (ev: WatchEvent) => void, onError?: (err: Error) => void): Promise<Watcher> {
    this.check()
    const range = prefixRange(prefix)
    const inner = this.client
      .watch()
      .inRange({start: range.key, end: range.range_end})
      .startRevision(String(afterRevision + 1))
      .watcher()
    const handle = new EtcdWatchHandle(this, inner, afterRevision, onEvent, onError)
    this.watchers.add(handle)
    try {
      await this.call('start a watch', handle.ready(this.opts.requestTimeoutMs))
    } catch (err) {
      handle.silence() // the caller gets the rejection: no onError on top
      await handle.close()
      throw err
    }
    return handle
  }

  /** @internal True when the history at revision has been compacted away. */
  async isCompacted(revision: number): Promise<boolean> {
    if (this.closed) return false
    try {
      await this.client.kv.range({key: ZERO, count_only: true, revision}, this.callOpts())
      return false
    } catch (err) {
      if (/compacted/i.test((err as Error).message)) return true
      throw err
    }
  }

  /** @internal */
  forgetWatcher(w: EtcdWatchHandle): void {
    this.watchers.delete(w)
  }

  async grantLease(ttlSeconds: number): Promise<Lease> {
    this.check()
    if (!(ttlSeconds > 0)) throw new RangeError(`lease TTL must be positive, got ${ttlSeconds}`)
    const ttl = Math.max(1, Math.ceil(ttlSeconds))
    const requestedAt = Date.now()
    const inner = this.client.lease(ttl, {autoKeepAlive: true})
    const handle = new EtcdLeaseHandle(this, inner, ttl, requestedAt)
    let id: string
    try {
      id = await this.call('grant a lease', withTimeout(inner.grant(), this.opts.requestTimeoutMs, 'etcd lease grant'))
    } catch (err) {
      handle.release()
      throw err
    }
    handle.setId(id)
    this.leases.add(handle)
    return handle
  }

  /** @internal */
  forgetLease(l: EtcdLeaseHandle): void {
    this.leases.delete(l)
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const l of [...this.leases]) l.release()
    await Promise.all([...this.watchers].map((w) => w.close()))
    this.client.close()
  }
}

class EtcdWatchHandle implements Watcher {
  private closed = false
  private canceledByServer = false
  private silenced = false
  /** Every revision <= delivered has been handed over completely. */
  private delivered: number

  constructor(
    private readonly coord: EtcdCoordinator,
    private readonly inner: EtcdWatcher,
    afterRevision: number,
    private readonly onEvent: (ev: WatchEvent) => void,
    private readonly onError?: (err: Error) => void,
  ) {
    this.delivered = afterRevision
    inner.on('data', (res: IWatchResponse) => this.onData(res))
    inner.on('error', (err: Error) => this.onServerCancel(err))
  }

  ready(timeoutMs: number): Promise<void> {
    return withTimeout(
      new Promise<void>((resolve, reject) => {
        this.inner.once('connected', () => resolve())
        this.inner.once('error', reject)
      }),
      timeoutMs,
      'etcd watch creation',
    )
  }

  private onData(res: IWatchResponse): void {
    if (this.closed) return
    let upTo = this.delivered
    for (const ev of res.events) {
      const rev = Number(ev.kv.mod_revision)
      if (rev <= this.delivered) continue // replayed after a reconnect
      upTo = Math.max(upTo, rev)
      try {
        this.onEvent({
          type: ev.type === 'Delete' ? 'delete' : 'put',
          key: ev.kv.key.toString('utf8'),
          value: ev.type === 'Delete' ? '' : ev.kv.value.toString('utf8'),
          revision: rev,
        })
      } catch (err) {
        this.fail(err instanceof Error ? err : new Error(String(err)))
        return
      }
      if (this.closed) return
    }
    this.delivered = upTo
  }

  /** The server canceled the watch (the only way etcd3 emits 'error' on a watcher). */
  private onServerCancel(err: Error): void {
    if (this.closed) return
    this.canceledByServer = true
    void this.close()
    // etcd does not always say why; a compacted start revision is the usual reason: ask.
    this.coord.isCompacted(this.delivered + 1).then(
      (compacted) => this.report(compacted ? new CompactedError(this.delivered + 1, -1) : err),
      () => this.report(err),
    )
  }

  /** @internal */
  silence(): void {
    this.silenced = true
  }

  private report(err: Error): void {
    if (!this.silenced) reportWatchError(err, this.onError)
  }

  private fail(err: Error): void {
    if (this.closed) return
    void this.close()
    this.report(err)
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.coord.forgetWatcher(this)
    this.inner.removeAllListeners('data')
    this.inner.on('error', () => {})
    // A watch the server canceled is already gone from the client's stream: cancelling it again would
    // send a cancel the client cannot match (etcd3 then throws from its stream handler).
    if (this.canceledByServer) return
    try {
      await withTimeout(this.inner.cancel(), 2000, 'etcd watch cancel')
    } catch {
      // The connection is gone: nothing left to cancel.
    }
  }
}

class EtcdLeaseHandle implements Lease {
  private _id = ''
  private readonly loss = new LeaseLoss(() => {
    if (this.watchdog) clearTimeout(this.watchdog)
    this.watchdog = null
    this.inner.release()
    this.coord.forgetLease(this)
  })
  /** Times the keep-alives still waiting for an answer were sent. */
  private pendingFires: number[] = []
  /** The lease is certainly alive on the server until then. */
  private confirmedUntil: number
  private watchdog: NodeJS.Timeout | null = null

  constructor(
    private readonly coord: EtcdCoordinator,
    private readonly inner: EtcdLease,
    readonly ttlSeconds: number,
    requestedAt: number,
  ) {
    this.confirmedUntil = requestedAt + ttlSeconds * 1000
    inner.on('lost', () => this.loss.markLost())
    inner.on('keepaliveEstablished', () => {
      this.pendingFires = []
    })
    inner.on('keepaliveFired', () => {
      this.pendingFires.push(Date.now())
    })
    inner.on('keepaliveSucceeded', () => {
      const sentAt = this.pendingFires.shift() ?? Date.now()
      this.confirmedUntil = Math.max(this.confirmedUntil, sentAt + this.ttlSeconds * 1000)
    })
    this.armWatchdog()
  }

  get id(): string {
    return this._id
  }

  /** @internal */
  setId(id: string): void {
    this._id = String(id)
  }

  private armWatchdog(): void {
    if (this.loss.isStopped) return
    const wait = Math.max(10, this.confirmedUntil - Date.now())
    this.watchdog = setTimeout(() => {
      this.watchdog = null
      if (this.loss.isStopped) return
      if (Date.now() >= this.confirmedUntil) this.loss.markLost()
      else this.armWatchdog()
    }, wait)
    this.watchdog.unref()
  }

  onLost(cb: () => void): void {
    this.loss.onLost(cb)
  }

  async revoke(): Promise<void> {
    this.loss.stop()
    await this.inner.revoke()
  }

  release(): void {
    this.loss.stop()
  }
}
