import {openStore} from '../backends/index.js'
import {array, encodeReply, error, integer, OK, type Reply} from '../backends/reply.js'
import type {KeyStore} from '../backends/types.js'
import {unitStoreUrl, type DbGroup, type DbUnit} from '../topology/rules.js'
import {keyIndexes, type CommandSpec} from '../resp/commands.js'
import {CutoverCopier, type CopySides} from './cutover-copier.js'
import {encodeError} from '../resp/resp.js'
import {RuleRouter, type RuleRoute} from './rule-route.js'
import {flushDirtySessions, type ReplySlot, type Session} from './session.js'

type GroupRoute = Extract<RuleRoute, {kind: 'dbgroup'}>

export interface DbGroupExecOptions {
  /** Opens the key store of a unit (default: src/backends openStore with the unit's URL and pool settings). */
  openStore?: (unit: DbUnit) => Promise<KeyStore>
  /** Longest time a key stays in a group's Redis cache (ms; default 60 s). Bounds any staleness. */
  cacheTtlMs?: number
  /** How long a store of a removed or changed unit stays open for requests in flight (ms; default 5 s). */
  closeGraceMs?: number
  /** Longest time a write waits while its cutover is held (ms; default 30 s, the proxies' slot parking). */
  parkMaxMs?: number
}

/** Read commands that must not be answered from the cache (the cache's TTL is capped, not the real one). */
const CACHE_BYPASS = new Set(['ttl', 'pttl', 'expiretime', 'pexpiretime', 'object', 'dump', 'type'])

interface StoreEntry {
  sig: string
  store: Promise<KeyStore>
}

/**
 * Runs commands on db groups through key stores (src/backends): one store per enabled unit, opened on
 * first use with the unit's pool settings, and replaced when the unit's settings change.
 *
 * - Writes go to the group's write units (writeall: every enabled master, the first one's reply is the
 *   answer and the others must succeed too; writeone: the first enabled master; discard: refused with
 *   an error — never a silent, made-up reply).
 * - Reads go to one member chosen by readWeight; if its store cannot be reached, another readable
 *   member is tried.
 * - With a cache (a redis unit): a read is answered by the cache when it holds the key; otherwise the
 *   key is read from the member, copied into the cache (TTL capped by cacheTtlMs) and the read runs on
 *   the member. A write deletes the key from the cache before and after it runs on the masters.
 */
export class DbGroupExecutor {
  private current: RuleRouter
  private readonly stores = new Map<string, StoreEntry>()
  private readonly opener: (unit: DbUnit) => Promise<KeyStore>
  private readonly cacheTtlMs: number
  private readonly closeGraceMs: number
  private closed = false
  private readonly parkMaxMs: number
  /** Requests running on the stores (not parked): the proxy drains them before acknowledging an epoch. */
  private readonly inFlight = new Set<Promise<unknown>>()
  /** Writes parked by a cutover's hold: woken by the next configuration. */
  private parked: (() => void)[] = []
  private readonly copier = new CutoverCopier((tag) => {
    const c = this.current.activeCutover(tag.cutover)
    return !!c && c.step === tag.step && !c.hold
  })

  constructor(router: RuleRouter = RuleRouter.empty(), opts: DbGroupExecOptions = {}) {
    this.current = router
    this.opener = opts.openStore ?? ((u) => openStore(unitStoreUrl(u)))
    this.cacheTtlMs = opts.cacheTtlMs ?? 60_000
    this.closeGraceMs = opts.closeGraceMs ?? 5_000
    this.parkMaxMs = opts.parkMaxMs ?? 30_000
  }

  get router(): RuleRouter {
    return this.current
  }

  /**
   * Keys whose cutover copy is still running. A write is answered once a copy that read the primary
   * after it has landed; the closing check that repairs another proxy's older copy may still run.
   */
  get copiesInProgress(): number {
    return this.copier.inProgress
  }

  /** Switches to a new configuration; stores of removed or changed units close after a grace period. */
  setRouter(router: RuleRouter): void {
    this.current = router
    this.copier.retire()
    this.wakeParked()
    for (const [name, entry] of this.stores) {
      const u = router.rules.units.get(name)
      if (u && u.enable && unitSig(u) === entry.sig) continue
      this.stores.delete(name)
      const t = setTimeout(() => void entry.store.then((s) => s.close()).catch(() => {}), this.closeGraceMs)
      t.unref()
    }
  }

  /**
   * Resolves when every request that was running on the stores when called has been answered, and
   * every copy of a cutover step that is over has stopped (docs/architecture.md rule 4's drain, for db groups).
   */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.inFlight])
    await this.copier.settled()
  }

  private wakeParked(): void {
    const woken = this.parked
    this.parked = []
    for (const wake of woken) wake()
  }

  /** Waits for the next configuration; false after ms. */
  private nextRouter(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.parked = this.parked.filter((w) => w !== wake)
        resolve(false)
      }, Math.max(0, ms))
      const wake = () => {
        clearTimeout(t)
        resolve(true)
      }
      this.parked.push(wake)
    })
  }

  async close(): Promise<void> {
    this.closed = true
    this.wakeParked()
    const all = [...this.stores.values()]
    this.stores.clear()
    await Promise.all(all.map((e) => e.store.then((s) => s.close()).catch(() => {})))
  }

  /** The store of a unit (opened on first use; a failed open is retried on the next call). */
  store(unitName: string): Promise<KeyStore> {
    const u = this.current.rules.units.get(unitName)
    if (!u) return Promise.reject(new Error(`db unit ${unitName} does not exist`))
    if (!u.enable) return Promise.reject(new Error(`db unit ${unitName} is disabled`))
    if (this.closed) return Promise.reject(new Error('the executor is closed'))
    const sig = unitSig(u)
    const e = this.stores.get(unitName)
    if (e && e.sig === sig) return e.store
    const entry: StoreEntry = {sig, store: this.opener(u)}
    this.stores.set(unitName, entry)
    entry.store.catch(() => {
      if (this.stores.get(unitName) === entry) this.stores.delete(unitName)
    })
    return entry.store
  }

  /**
   * Runs one command (argv) on the group a key routed to. key: the key, for the cache; keys: every key
   * the command writes (for a cutover's copy; default [key]).
   */
  async execute(route: GroupRoute, write: boolean, argv: Buffer[], key?: Buffer, keys?: Buffer[]): Promise<Reply> {
    // A held cutover: the write waits for the configuration after the hold, and is routed by it.
    const first = keys?.[0] ?? key
    const deadline = Date.now() + this.parkMaxMs
    while (write && route.cutover?.hold && first) {
      const held = route.cutover
      if (this.closed) return error('ERR the proxy is shutting down')
      if (!(await this.nextRouter(deadline - Date.now()))) return error(`ERR cutover ${held.name} is changing the side that answers and did not finish within ${this.parkMaxMs} ms; try again`)
      const next = this.current.route(first)
      if (next.kind !== 'dbgroup') return error(`ERR cutover ${held.name}: the key no longer routes to a db group after the configuration changed; try again`)
      route = next
    }
    const run = route.cutover ? this.executeCutover(route, write, argv, key, keys ?? (key ? [key] : [])) : this.executeOn(route, write, argv, key)
    this.inFlight.add(run)
    try {
      return await run
    } finally {
      this.inFlight.delete(run)
    }
  }

  /**
   * A key whose rule is being cut over: the primary side (old place before switch, new group after)
   * runs the command and answers; after a write, each written key's resulting value is read from the
   * primary and copied to the other side (or deleted there), so a non-idempotent command (INCR,
   * HINCRBY, RPUSH, ...) can never make the sides diverge and a key not yet backfilled is copied whole.
   * Concurrent copies of one key are ordered by CutoverCopier.
   */
  private async executeCutover(route: GroupRoute, write: boolean, argv: Buffer[], key: Buffer | undefined, keys: Buffer[]): Promise<Reply> {
    const c = route.cutover!
    const oldSide: GroupRoute = {...route, cutover: undefined}
    const newSide: GroupRoute = {kind: 'dbgroup', group: c.to, path: route.path, readUnit: c.toReadUnit, writeUnits: c.toWriteUnits}
    const [primary, secondary] = c.step === 'switched' ? [newSide, oldSide] : [oldSide, newSide]
    const reply = await this.executeOn(primary, write, argv, key)
    if (!write || reply.type === 'error' || !keys.length) return reply
    try {
      const src = primary.writeUnits()[0]
      if (!src) return reply
      const sides = async (): Promise<CopySides> => ({
        from: await this.store(src),
        to: await Promise.all(secondary.writeUnits().map((u) => this.store(u))),
        cache: secondary.group.cache ? await this.store(secondary.group.cache) : undefined,
      })
      const tag = {cutover: c.name, step: c.step}
      const direction = `${c.name}\0${c.step}\0${primary.group.name}>${secondary.group.name}\0`
      await Promise.all(keys.map((k) => this.copier.copy(direction + k.toString('latin1'), tag, k, sides)))
    } catch (err) {
      return error(`ERR cutover ${c.name}: written to db group ${primary.group.name} but not copied to ${secondary.group.name}: ${oneLine((err as Error).message)}`)
    }
    return reply
  }

  private async executeOn(route: GroupRoute, write: boolean, argv: Buffer[], key?: Buffer): Promise<Reply> {
    const g = route.group
    if (!g.enable) return error(`ERR db group ${g.name} is disabled`)
    const cmd = argv[0].toString('latin1').toLowerCase()
    try {
      if (write) return await this.write(route, g, argv, key)
      if (g.cache && key && !CACHE_BYPASS.has(cmd)) return await this.cachedRead(route, g, argv, key)
      return await this.read(route, g, argv)
    } catch (err) {
      return error(`ERR db group ${g.name}: ${oneLine((err as Error).message)}`)
    }
  }

  private async write(route: GroupRoute, g: DbGroup, argv: Buffer[], key: Buffer | undefined): Promise<Reply> {
    const units = route.writeUnits()
    if (!units.length) {
      if (g.replicateMode === 'discard') return error(`ERR db group ${g.name} discards writes (replicateMode discard)`)
      return error(`ERR db group ${g.name} has no enabled master to write to`)
    }
    const cache = g.cache && key ? await this.store(g.cache) : undefined
    if (cache && key) await cache.execute([Buffer.from('DEL'), key])
    const first = await (await this.store(units[0])).execute(argv)
    if (units.length > 1) {
      const rest = await Promise.all(
        units.slice(1).map(async (u) => {
          try {
            return {u, r: await (await this.store(u)).execute(argv)}
          } catch (err) {
            return {u, r: error(`ERR ${oneLine((err as Error).message)}`)}
          }
        }),
      )
      const bad = rest.filter((x) => x.r.type === 'error' && first.type !== 'error')
      if (bad.length) {
        return error(`ERR write applied on ${units[0]} but failed on ${bad.map((b) => `${b.u} (${(b.r as {value: string}).value})`).join(', ')}`)
      }
    }
    if (cache && key) await cache.execute([Buffer.from('DEL'), key])
    return first
  }

  private async read(route: GroupRoute, g: DbGroup, argv: Buffer[]): Promise<Reply> {
    const tried = new Set<string>()
    let lastErr: Error | undefined
    for (let attempt = 0; attempt < 3; attempt++) {
      let unit = route.readUnit()
      if (unit && tried.has(unit)) unit = this.current.rules.readable(g.name).find((m) => !tried.has(m.unit))?.unit
      if (!unit) break
      tried.add(unit)
      try {
        return await (await this.store(unit)).execute(argv)
      } catch (err) {
        lastErr = err as Error
      }
    }
    if (lastErr) throw lastErr
    return error(`ERR db group ${g.name} has no readable member`)
  }

  private async cachedRead(route: GroupRoute, g: DbGroup, argv: Buffer[], key: Buffer): Promise<Reply> {
    let cache: KeyStore | undefined
    try {
      cache = await this.store(g.cache!)
      const exists = await cache.execute([Buffer.from('EXISTS'), key])
      if (exists.type === 'integer' && Number(exists.value) === 1) return await cache.execute(argv)
    } catch {
      cache = undefined // a cache that cannot be reached is skipped
    }
    const unit = route.readUnit()
    if (!unit) return error(`ERR db group ${g.name} has no readable member`)
    const member = await this.store(unit)
    if (cache) {
      const snap = await member.readKey(key)
      if (snap) {
        const ttl = snap.pttl < 0 || snap.pttl > this.cacheTtlMs ? this.cacheTtlMs : snap.pttl
        try {
          await cache.writeKey(key, {...snap, pttl: Math.max(1, ttl)} as typeof snap)
        } catch {
          // filling the cache is best effort
        }
      }
    }
    return member.execute(argv)
  }
}

function unitSig(u: DbUnit): string {
  return JSON.stringify([u.type, u.url, u.server, u.port, u.maxIdle, u.maxOpen, u.maxLifetime])
}

function oneLine(s: string): string {
  return s.replace(/[\r\n]+/g, ' ')
}

/**
 * The proxy hook: routes a command by the rules and, when the product has rules, answers it from the
 * db groups (returns true; the reply slot is filled later, in order). Returns false when the product
 * has no rules, so the caller routes by slot as before.
 *
 * - single-key commands: the key's db group;
 * - split commands (MGET, DEL, EXISTS, TOUCH, UNLINK, MSET): one sub-command per key, replies reassembled;
 * - other multi-key commands: only when every key routes to the same db group.
 *
 * The session is held while the command runs, so one client's commands are never reordered.
 */
export function dispatchByRule(exec: DbGroupExecutor, session: Session, spec: CommandSpec, args: Buffer[], slot: ReplySlot): boolean {
  const router = exec.router
  if (!router.requiresRules) return false
  let keys: Buffer[]
  if (spec.kind === 'single') {
    keys = [args[spec.firstKey]!]
  } else {
    const idx = keyIndexes(spec, args)
    if (typeof idx === 'string') {
      session.fill(slot, encodeError(idx))
      return true
    }
    keys = idx.map((i) => args[i]!)
  }
  if (!keys.length || keys.some((k) => !k)) return false // arity errors are answered by the caller
  const routes: GroupRoute[] = []
  for (const k of keys) {
    const r = router.route(k)
    if (r.kind === 'unregistered') {
      session.fill(slot, encodeError(keys.length > 1 ? `${r.error}: '${k.toString('latin1').slice(0, 128)}'` : r.error))
      return true
    }
    if (r.kind === 'slot') return false
    routes.push(r)
  }
  let run: Promise<Reply>
  if (spec.kind === 'split' && keys.length > 1) {
    run = runSplit(exec, spec, args, keys, routes)
  } else {
    if (routes.some((r) => r.group.name !== routes[0].group.name)) {
      session.fill(slot, encodeError(`CROSSSLOT Keys in request don't route to the same db group`))
      return true
    }
    run = exec.execute(routes[0], spec.write, args, keys.length === 1 ? keys[0] : undefined, keys)
  }
  session.held = session.held ?? []
  run
    .then(
      (reply) => session.fill(slot, encodeReply(reply)),
      (err) => session.fill(slot, encodeError(`ERR ${oneLine((err as Error).message)}`)),
    )
    .finally(() => {
      session.release()
      // The reply is filled outside the session's read batch (nothing else flushes it): write it now.
      flushDirtySessions()
    })
  return true
}

async function runSplit(exec: DbGroupExecutor, spec: CommandSpec, args: Buffer[], keys: Buffer[], routes: GroupRoute[]): Promise<Reply> {
  const name = spec.name
  const step = spec.step
  const parts = await Promise.all(
    keys.map((k, i) => {
      const sub = name === 'mset' ? [Buffer.from('SET'), k, args[1 + i * step + 1]!] : [Buffer.from(name === 'mget' ? 'GET' : name.toUpperCase()), k]
      return exec.execute(routes[i], spec.write, sub, k)
    }),
  )
  // MGET answers nil for a key of another type (as Redis does); any other error fails the command.
  const wrongType = (p: Reply) => p.type === 'error' && p.value.startsWith('WRONGTYPE')
  const err = parts.find((p) => p.type === 'error' && !(name === 'mget' && wrongType(p)))
  if (err) return err
  if (name === 'mget') return array(parts.map((p) => (wrongType(p) ? {type: 'bulk', value: null} : p)))
  if (name === 'mset') return OK
  let sum = 0
  for (const p of parts) if (p.type === 'integer') sum += Number(p.value)
  return integer(sum)
}
