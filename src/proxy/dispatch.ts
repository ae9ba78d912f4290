import {slotOf} from '../topology/slots.js'
import type {BackendPool, BackendConn} from '../resp/backend.js'
import {dispatchByRule, type DbGroupExecutor} from './dbgroup-exec.js'
import {arityOk, keyIndexes, lookupCommand, type CommandSpec} from '../resp/commands.js'
import {
  decodeReplyOrError,
  encodeArrayOfRaw,
  encodeCommand,
  encodeError,
  encodeInt,
  OK,
  RespError,
  type Request,
} from '../resp/resp.js'
import {INTERNAL_KEY_PREFIX, isReservedKey, pendingSetKey} from '../topology/internal-keys.js'
import type {RoutingTable, SlotRoute} from './routing.js'
import type {ReplySlot, Session} from './session.js'
import {dispatchFanout} from './fanout.js'

/** How long MIGRATE may take to hand one batch of keys to the target (ms). */
export const MIGRATE_TIMEOUT_MS = 10_000

const CROSSSLOT = "CROSSSLOT Keys in request don't hash to the same group"
const NOOP = () => {}

export interface DispatchContext {
  table: RoutingTable
  pool: BackendPool
  /** Answers a local command (PING, INFO, ...). */
  local(session: Session, spec: CommandSpec, args: Buffer[], slot: ReplySlot): void
  /** Non-empty when routed commands must be refused (offline, fenced), with the error text. */
  refusal: string
  /** rstore rules (regex -> shard -> db group); keys no rule claims fall through to slot routing. */
  rules: DbGroupExecutor
  /** Requests waiting for a held slot (see SlotRoute.hold), in arrival order. */
  parked: Parked[]
  /** Commands the operator turned off (`proxy start --deny-commands`), lower case. */
  denied: Set<string>
}

export interface Parked {
  session: Session
  spec: CommandSpec
  req: Request
  slot: ReplySlot
  since: number
}

/** Parks a request on a held slot; the session's later requests wait behind it. */
function park(ctx: DispatchContext, session: Session, spec: CommandSpec, req: Request, slot: ReplySlot): void {
  session.held = session.held ?? []
  ctx.parked.push({session, spec, req, slot, since: Date.now()})
}

/**
 * Routes parked requests again under the current table (after a topology change), oldest first;
 * those older than maxWaitMs get an error instead (a mover that died while holding a slot).
 */
export function unpark(ctx: DispatchContext, maxWaitMs: number): void {
  if (ctx.parked.length === 0) return
  const list = ctx.parked
  ctx.parked = []
  const now = Date.now()
  for (const p of list) {
    const {session} = p
    if (session.closed) continue
    const queued = session.held ?? []
    session.held = null
    if (now - p.since > maxWaitMs) {
      session.fill(p.slot, encodeError(`ERR slot is held for a migration that has not started for ${Math.round(maxWaitMs / 1000)} s; retry`))
    } else {
      routeRequest(ctx, session, p.spec, p.req, p.slot)
    }
    // The request may have parked again or be moving keys: the queued ones stay behind it.
    if (session.held) (session.held as Request[]).push(...queued)
    else {
      session.held = queued
      session.release()
    }
  }
}

function lower(b: Buffer): string {
  return b.toString('latin1').toLowerCase()
}

/**
 * Redis's own text, byte for byte: arguments are quoted until 128 bytes in all, each read as a C
 * string (cut at NUL), and every CR or LF becomes a space.
 */
function unknownCommand(args: Buffer[]): Buffer {
  const cstr = (b: Buffer) => {
    const nul = b.indexOf(0)
    return (nul >= 0 ? b.subarray(0, nul) : b).toString('latin1')
  }
  let rest = ''
  for (let i = 1; i < args.length && rest.length < 128; i++) rest += `'${cstr(args[i]!).slice(0, 128 - rest.length)}' `
  const text = `-ERR unknown command '${cstr(args[0]!).slice(0, 128)}', with args beginning with: ${rest}`
  return Buffer.from(`${text.replace(/[\r\n]/g, ' ')}\r\n`, 'latin1')
}

/** Routes one request of a session. Every path fills exactly one reply slot. */
export function dispatch(ctx: DispatchContext, session: Session, req: Request): void {
  const args = req.args
  const name = lower(args[0]!)
  const spec = lookupCommand(name)
  if (!spec) {
    session.pushReady(unknownCommand(args), 'unknown')
    return
  }
  const slot = session.reserve(name)
  // Redis's order: unknown command, then arity, then authentication.
  if (!arityOk(spec, args.length)) {
    session.fill(slot, encodeError(`ERR wrong number of arguments for '${name}' command`))
    return
  }
  if (!session.authed && name !== 'auth' && name !== 'hello' && name !== 'quit') {
    session.fill(slot, encodeError('NOAUTH Authentication required.'))
    return
  }
  if (ctx.denied.has(name)) {
    session.fill(slot, encodeError(`ERR command '${name}' is disabled in this rstore proxy (--deny-commands)`))
    return
  }
  if (spec.kind === 'unsupported') {
    session.fill(slot, encodeError(`ERR unsupported command '${name}' in rstore proxy: ${spec.why}`))
    return
  }
  if (spec.kind === 'local') {
    ctx.local(session, spec, args, slot)
    return
  }
  if (ctx.refusal) {
    session.fill(slot, encodeError(ctx.refusal))
    return
  }
  if (spec.kind === 'fanout') {
    dispatchFanout(ctx, session, spec, args, slot)
    return
  }
  const reserved = reservedKey(spec, args)
  if (reserved) {
    session.fill(slot, encodeError(reservedKeyError(reserved)))
    return
  }
  if (ctx.rules.router.requiresRules && dispatchByRule(ctx.rules, session, spec, args, slot)) return
  routeRequest(ctx, session, spec, req, slot)
}

/**
 * The first key argument in rstore's own key space (`__rstore:*`: the migration's pending sets, see
 * docs/migration.md), or null. A client that could write, delete or read those keys could make a
 * migration move a key to the wrong group or miss one, and a user key there is skipped by the mover.
 */
function reservedKey(spec: CommandSpec, args: Buffer[]): Buffer | null {
  if (spec.kind === 'single') {
    const key = args[spec.firstKey]
    return key && isReservedKey(key) ? key : null
  }
  const indexes = keyIndexes(spec, args)
  if (typeof indexes === 'string') return null // a bad numkeys: answered by Redis without touching a key
  for (const i of indexes) {
    const key = args[i]
    if (key && isReservedKey(key)) return key
  }
  return null
}

/** The refusal of a key in the reserved space, with the key printable on one line. */
export function reservedKeyError(key: Buffer): string {
  let text = key.toString('latin1').replace(/[^\x20-\x7e]/g, '?')
  if (text.length > 80) text = `${text.slice(0, 77)}...`
  return `ERR key '${text}' is in rstore's reserved key space (${INTERNAL_KEY_PREFIX}*); rename it`
}

/** Slot routing of a request whose reply position is reserved. */
function routeRequest(ctx: DispatchContext, session: Session, spec: CommandSpec, req: Request, slot: ReplySlot): void {
  const args = req.args
  const name = spec.name
  if (spec.kind === 'single') {
    const key = args[spec.firstKey]
    if (!key) {
      // OBJECT / XINFO / MEMORY with a subcommand and no key (HELP, a wrong subcommand or arity).
      const sub = args[1] ? lower(args[1]) : ''
      if (name === 'memory' && sub !== 'help' && sub !== 'usage') {
        session.fill(slot, encodeError(`ERR unsupported command 'memory ${sub}' in rstore proxy: it reports on one server`))
      } else answerAnywhere(ctx, session, req, slot, `ERR wrong number of arguments for '${name}' command`)
      return
    }
    dispatchSingle(ctx, session, spec, key, req, slot)
  } else if (spec.kind === 'split') {
    dispatchSplit(ctx, session, spec, req, slot)
  } else {
    dispatchMulti(ctx, session, spec, req, slot)
  }
}

function slotError(n: number, route: SlotRoute): string {
  if (route.state === 'offline') return `ERR slot ${n} is not online`
  return `ERR slot ${n} has no master in group ${route.group}`
}

/**
 * For a request that no key routes and that every server refuses or answers alike (a bad numkeys, a
 * subcommand's HELP or arity error): one master answers, so the text is Redis's own.
 */
function answerAnywhere(ctx: DispatchContext, session: Session, req: Request, slot: ReplySlot, fallback: string): void {
  const master = ctx.table.masters[0]
  if (master) forward(ctx.pool.get(master, session.id), session, req.raw ?? encodeCommand(req.args), slot)
  else session.fill(slot, encodeError(fallback))
}

/** Writes the request to conn; fills the reply slot with the reply or an error. */
function forward(conn: BackendConn, session: Session, raw: Buffer, slot: ReplySlot): void {
  conn.send(raw, (reply, err) => session.fill(slot, reply ?? encodeError(err!)))
}

function dispatchSingle(ctx: DispatchContext, session: Session, spec: CommandSpec, key: Buffer, req: Request, slot: ReplySlot): void {
  const n = slotOf(key)
  const route = ctx.table.slots[n]!
  if (route.state === 'offline' || !route.master) {
    session.fill(slot, encodeError(slotError(n, route)))
    return
  }
  if (route.hold) return park(ctx, session, spec, req, slot)
  const raw = req.raw ?? encodeCommand(req.args)
  if (route.state === 'online') {
    const conn = ctx.pool.get(route.master, session.id)
    forward(conn, session, raw, slot)
    if (route.pending && spec.write) conn.send(encodeCommand(['SADD', pendingSetKey(n), key]), NOOP)
    return
  }
  // Migrating: move the key off the source first, then run the command on the target (rule 6).
  const target = ctx.pool.get(route.master, session.id)
  moveKeysThen(ctx, session, [{route, keys: [key]}], slot, () => forward(target, session, raw, slot))
}

interface MoveSet {
  route: SlotRoute
  keys: Buffer[]
}

/**
 * Sends `MIGRATE ... KEYS` for keys of migrating slots to their source masters, then calls next().
 * The session is held meanwhile so its later commands are not reordered around this one. If any
 * move fails, the command fails and nothing is written to the target.
 */
function moveKeysThen(ctx: DispatchContext, session: Session, moves: MoveSet[], slot: ReplySlot, next: () => void): void {
  const bySource = new Map<string, {route: SlotRoute; keys: Buffer[]}>()
  for (const m of moves) {
    const e = bySource.get(m.route.fromMaster)
    if (e) e.keys.push(...m.keys)
    else bySource.set(m.route.fromMaster, {route: m.route, keys: [...m.keys]})
  }
  let waiting = bySource.size
  let failed = ''
  session.held = session.held ?? []
  const done = () => {
    if (--waiting > 0) return
    if (failed) session.fill(slot, encodeError(failed))
    else next()
    session.release()
  }
  for (const [source, {route, keys}] of bySource) {
    if (!source) {
      failed = `ERR migrating slot has no source master in group ${route.fromGroup}`
      done()
      continue
    }
    const [host, port] = splitAddr(route.master)
    const conn = ctx.pool.get(source, session.id)
    const migrate = (replace: boolean) => {
      const cmd: (string | Buffer)[] = ['MIGRATE', host, port, '', '0', String(MIGRATE_TIMEOUT_MS)]
      if (replace) cmd.push('REPLACE')
      cmd.push(...conn.migrateAuth(), 'KEYS', ...keys)
      conn.send(encodeCommand(cmd), (reply, err) => {
        if (err) failed = err
        else if (reply![0] === 0x2d) {
          const text = (decodeReplyOrError(reply!) as RespError).message
          // The key is on both sides only after an interrupted MIGRATE; the source copy is the
          // authoritative one (nothing writes the target while the key is on the source).
          if (!replace && text.includes('BUSYKEY')) return migrate(true)
          failed = `ERR could not move key off migrating slot: ${text}`
        }
        done()
      })
    }
    migrate(false)
  }
}

function splitAddr(addr: string): [string, string] {
  const i = addr.lastIndexOf(':')
  return [addr.slice(0, i), addr.slice(i + 1)]
}

/** Routes each key; returns the error text if a key's slot cannot be served. */
function routeKeys(ctx: DispatchContext, args: Buffer[], indexes: number[]): {routes: SlotRoute[]; slots: number[]} | string {
  const routes: SlotRoute[] = []
  const slots: number[] = []
  for (const i of indexes) {
    const n = slotOf(args[i]!)
    const route = ctx.table.slots[n]!
    if (route.state === 'offline' || !route.master) return slotError(n, route)
    routes.push(route)
    slots.push(n)
  }
  return {routes, slots}
}

function pendingWrites(routes: SlotRoute[], slots: number[], keys: Buffer[]): Buffer[] {
  const out: Buffer[] = []
  for (let i = 0; i < routes.length; i++) {
    if (routes[i]!.pending) out.push(encodeCommand(['SADD', pendingSetKey(slots[i]!), keys[i]!]))
  }
  return out
}

function migratingMoves(routes: SlotRoute[], keys: Buffer[]): MoveSet[] {
  const moves: MoveSet[] = []
  for (let i = 0; i < routes.length; i++) if (routes[i]!.state === 'migrating') moves.push({route: routes[i]!, keys: [keys[i]!]})
  return moves
}

/** Commands whose keys must all live on one group: run there, or CROSSSLOT. */
function dispatchMulti(ctx: DispatchContext, session: Session, spec: CommandSpec, req: Request, slot: ReplySlot): void {
  const indexes = keyIndexes(spec, req.args)
  if (typeof indexes === 'string') {
    answerAnywhere(ctx, session, req, slot, indexes)
    return
  }
  if (indexes.length === 0) {
    const message = `ERR rstore routes '${spec.name}' by its keys: give at least one key`
    // numkeys 0: EVAL would run keyless (refused here); every other such command is refused by Redis.
    if (spec.name.startsWith('eval')) session.fill(slot, encodeError(message))
    else answerAnywhere(ctx, session, req, slot, message)
    return
  }
  const routed = routeKeys(ctx, req.args, indexes)
  if (typeof routed === 'string') {
    session.fill(slot, encodeError(routed))
    return
  }
  const {routes, slots} = routed
  if (routes.some((r) => r.hold)) return park(ctx, session, spec, req, slot)
  const master = routes[0]!.master
  if (routes.some((r) => r.master !== master)) {
    session.fill(slot, encodeError(CROSSSLOT))
    return
  }
  if (spec.name === 'msetnx' && slots.some((s) => s !== slots[0])) {
    session.fill(slot, encodeError("CROSSSLOT Keys in request don't hash to the same slot"))
    return
  }
  const keys = indexes.map((i) => req.args[i]!)
  const conn = ctx.pool.get(master, session.id)
  const raw = req.raw ?? encodeCommand(req.args)
  const send = () => {
    forward(conn, session, raw, slot)
    if (spec.write) for (const p of pendingWrites(routes, slots, keys)) conn.send(p, NOOP)
  }
  const moves = migratingMoves(routes, keys)
  if (moves.length) moveKeysThen(ctx, session, moves, slot, send)
  else send()
}

/** MGET, MSET, DEL, UNLINK, EXISTS, TOUCH: one sub-command per group, replies reassembled in order. */
function dispatchSplit(ctx: DispatchContext, session: Session, spec: CommandSpec, req: Request, slot: ReplySlot): void {
  const args = req.args
  const indexes = keyIndexes(spec, args) as number[]
  if (spec.name === 'mset' && (args.length - 1) % 2 !== 0) {
    session.fill(slot, encodeError(`ERR wrong number of arguments for 'mset' command`))
    return
  }
  const routed = routeKeys(ctx, args, indexes)
  if (typeof routed === 'string') {
    session.fill(slot, encodeError(routed))
    return
  }
  const {routes, slots} = routed
  if (routes.some((r) => r.hold)) return park(ctx, session, spec, req, slot)
  const keys = indexes.map((i) => args[i]!)
  const groups = new Map<string, number[]>() // master -> positions in indexes
  routes.forEach((r, pos) => {
    const list = groups.get(r.master)
    if (list) list.push(pos)
    else groups.set(r.master, [pos])
  })
  const perKey = spec.name === 'mset' ? 2 : 1
  const sendAll = () => {
    if (groups.size === 1) {
      const [master] = groups.keys()
      const conn = ctx.pool.get(master!, session.id)
      forward(conn, session, req.raw ?? encodeCommand(args), slot)
      if (spec.write) for (const p of pendingWrites(routes, slots, keys)) conn.send(p, NOOP)
      return
    }
    const parts: {positions: number[]; reply: Buffer | null}[] = []
    let waiting = groups.size
    let error: Buffer | null = null
    const finish = () => {
      if (--waiting > 0) return
      session.fill(slot, error ?? combine(spec.name, parts, keys.length))
    }
    for (const [master, positions] of groups) {
      const sub: Buffer[] = [args[0]!]
      for (const pos of positions) for (let k = 0; k < perKey; k++) sub.push(args[indexes[pos]! + k]!)
      const part = {positions, reply: null as Buffer | null}
      parts.push(part)
      const conn = ctx.pool.get(master, session.id)
      conn.send(encodeCommand(sub), (reply, err) => {
        if (err) error = error ?? encodeError(err)
        else if (reply![0] === 0x2d) error = error ?? reply!
        else part.reply = reply!
        finish()
      })
      if (spec.write) {
        const pRoutes = positions.map((p) => routes[p]!)
        const pSlots = positions.map((p) => slots[p]!)
        const pKeys = positions.map((p) => keys[p]!)
        for (const p of pendingWrites(pRoutes, pSlots, pKeys)) conn.send(p, NOOP)
      }
    }
  }
  const moves = migratingMoves(routes, keys)
  if (moves.length) moveKeysThen(ctx, session, moves, slot, sendAll)
  else sendAll()
}

function combine(name: string, parts: {positions: number[]; reply: Buffer | null}[], total: number): Buffer {
  if (name === 'mset') return OK
  if (name === 'mget') {
    const items: Buffer[] = new Array(total)
    for (const part of parts) {
      const values = decodeReplyOrError(part.reply!)
      if (!Array.isArray(values)) return values instanceof RespError ? encodeError(values.message) : part.reply!
      part.positions.forEach((pos, i) => {
        const v = values[i]
        items[pos] = v === null || v === undefined ? Buffer.from('$-1\r\n') : encodeBulkRaw(v as Buffer)
      })
    }
    return encodeArrayOfRaw(items)
  }
  let sum = 0
  for (const part of parts) {
    const n = decodeReplyOrError(part.reply!)
    if (typeof n !== 'number') return n instanceof RespError ? encodeError(n.message) : part.reply!
    sum += n
  }
  return encodeInt(sum)
}

function encodeBulkRaw(b: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n')])
}
