/**
 * Commands answered over every group as one Redis would (docs/proxy-fanout.md): SCAN, KEYS, RANDOMKEY,
 * FLUSHDB / FLUSHALL, CONFIG, SCRIPT, LASTSAVE. Each sends the command (or a rewritten one) to the
 * masters and merges their replies; rstore's own keys (`__rstore:*`) never reach the client.
 */
import {decodeReplyOrError, encodeBulk, encodeCommand, encodeError, encodeValue, OK, RespError, type RespValue} from '../resp/resp.js'
import type {CommandSpec} from '../resp/commands.js'
import {isReservedKey} from '../topology/internal-keys.js'
import type {BackendPool} from '../resp/backend.js'
import type {RoutingTable} from './routing.js'
import type {ReplySlot, Session} from './session.js'
import {decodeScanCursor, encodeScanCursor, MAX_SCAN_GROUPS, scanOrder} from './scan-cursor.js'
import {answerMerged, configGet, scriptExists} from './fanout-merge.js'
import {firstKeyByScan, flushByScan, keysByScan} from './fanout-scan.js'

export interface FanoutContext {
  table: RoutingTable
  pool: BackendPool
}

type Group = {id: number; master: string}
type Reply = {group: number; value: RespValue; raw: Buffer}

const lower = (b: Buffer | undefined) => (b ? b.toString('latin1').toLowerCase() : '')

/** The groups with a master, by id; a fan-out command needs every one of them. */
function masters(ctx: FanoutContext): Group[] | string {
  for (const g of ctx.table.groups) if (!g.master) return `ERR group ${g.id} has no master`
  return ctx.table.groups
}

/**
 * Sends one command to each group at once; calls done with every reply in group order, or with the
 * first error (a backend unavailable, or a server's own error reply) prefixed by its group.
 */
function sendEach(ctx: FanoutContext, session: Session, groups: Group[], cmd: Buffer, done: (replies: Reply[] | string | Buffer) => void): void {
  if (groups.length === 0) return done([])
  const out: Reply[] = new Array(groups.length)
  const errors: string[] = new Array(groups.length).fill('')
  let waiting = groups.length
  groups.forEach((g, i) => {
    ctx.pool.get(g.master, session.id).send(cmd, (raw, err) => {
      if (err) errors[i] = `ERR group ${g.id}: ${err}`
      else {
        const value = decodeReplyOrError(raw!)
        if (value instanceof RespError) errors[i] = `${errorCode(value.message)} group ${g.id}: ${value.message}`
        out[i] = {group: g.id, value, raw: raw!}
      }
      if (--waiting > 0) return
      // Every group refused the arity alike: Redis's own words. Else the lowest group's error, named.
      const first = out[0]?.raw
      if (first && first.includes('ERR wrong number of arguments') && out.every((r) => r?.raw.equals(first))) return done(first)
      done(errors.find(Boolean) || out)
    })
  })
}

/** The error's code word (ERR, WRONGTYPE, ...), kept first so clients classify it as before. */
function errorCode(message: string): string {
  const m = /^[A-Z]+/.exec(message)
  return m ? m[0] : 'ERR'
}

/** Why FLUSHDB / FLUSHALL must wait: a slot whose keys are moving or about to, or '' if none. */
function migrationBusy(table: RoutingTable): string {
  for (let n = 0; n < table.slots.length; n++) {
    const s = table.slots[n]!
    if (s.state === 'migrating' || s.hold || s.pending) return `slot ${n} is ${s.state === 'migrating' ? 'migrating' : s.hold ? 'held for a migration' : 'pending a migration'}`
  }
  return ''
}

/** Answers a fan-out command. Every path fills the reply slot exactly once. */
export function dispatchFanout(ctx: FanoutContext, session: Session, spec: CommandSpec, args: Buffer[], slot: ReplySlot): void {
  const reply = (b: Buffer) => session.fill(slot, b)
  const groups = masters(ctx)
  if (typeof groups === 'string') return reply(encodeError(groups))
  const all = (cmd: Buffer, merge: (r: Reply[]) => Buffer) =>
    sendEach(ctx, session, groups, cmd, (r) => reply(typeof r === 'string' ? encodeError(r) : Buffer.isBuffer(r) ? r : merge(r)))
  const raw = encodeCommand(args)
  switch (spec.name) {
    case 'scan':
      return scan(ctx, session, args, slot)
    case 'keys':
      return keysByScan(ctx.pool, session, scanOrder(ctx.table), args[1]!, slot)
    case 'randomkey':
      return randomKey(ctx, session, slot)
    case 'flushdb':
    case 'flushall': {
      if (args.length > 2 || (args[1] && !['async', 'sync'].includes(lower(args[1])))) return reply(encodeError('ERR syntax error'))
      const busy = migrationBusy(ctx.table)
      if (busy) return reply(encodeError(`ERR ${spec.name} refused while a migration runs (${busy}); retry when it is done`))
      return flushByScan(ctx.pool, session, groups, lower(args[1]) === 'async', slot)
    }
    case 'lastsave':
      // The oldest save: every group's data was saved at least this recently.
      return all(raw, (r) => encodeValue(r.length ? Math.min(...r.map((x) => x.value as number)) : Math.floor(Date.now() / 1000)))
    case 'config': {
      const sub = lower(args[1])
      if (sub === 'get') return all(raw, (r) => configGet(r.map((x) => x.value)))
      if (sub === 'set' || sub === 'resetstat') return all(raw, () => OK)
      if (sub === 'help') return answerOne(ctx, session, groups, raw, slot)
      return reply(encodeError(`ERR unsupported command 'config ${sub}' in rstore proxy: it changes one server's files`))
    }
    case 'script': {
      const sub = lower(args[1])
      if (sub === 'load') return all(raw, (r) => answerMerged(r.map((x) => x.raw), 'SCRIPT LOAD'))
      if (sub === 'exists') return all(raw, (r) => scriptExists(r.map((x) => x.value)))
      if (sub === 'flush') return all(raw, () => OK)
      if (sub === 'help') return answerOne(ctx, session, groups, raw, slot)
      return reply(encodeError(`ERR unsupported command 'script ${sub}' in rstore proxy: scripts run on one group each`))
    }
    default:
      return reply(encodeError(`ERR unknown command '${spec.name}'`))
  }
}

/** A request every server answers alike (HELP, a wrong argument): the first group's words. */
function answerOne(ctx: FanoutContext, session: Session, groups: Group[], raw: Buffer, slot: ReplySlot): void {
  if (!groups[0]) return session.fill(slot, encodeError('ERR no server group'))
  ctx.pool.get(groups[0].master, session.id).send(raw, (r, err) => session.fill(slot, r ?? encodeError(err!)))
}

/**
 * SCAN over the groups in scanOrder: the cursor names the group and its server's cursor; a group's
 * final 0 moves on to the next group, and 0 goes back to the client only after the last one.
 */
function scan(ctx: FanoutContext, session: Session, args: Buffer[], slot: ReplySlot): void {
  const reply = (b: Buffer) => session.fill(slot, b)
  const order = scanOrder(ctx.table)
  if (order.length > MAX_SCAN_GROUPS) return reply(encodeError(`ERR SCAN supports at most ${MAX_SCAN_GROUPS} groups`))
  const epoch = ctx.table.epoch
  const pos = decodeScanCursor(args[1]!.toString('latin1'), epoch, order.length)
  if (!pos) return reply(encodeError('ERR invalid cursor'))
  const group = order[pos.index]
  if (!group) return reply(encodeValue(['0', []]))
  const cmd = encodeCommand(['SCAN', pos.serverCursor, ...args.slice(2)])
  ctx.pool.get(group.master, session.id).send(cmd, (raw, err) => {
    if (err) return reply(encodeError(`ERR group ${group.id}: ${err}`))
    const value = decodeReplyOrError(raw!)
    if (!Array.isArray(value)) return reply(value instanceof RespError ? encodeError(value.message) : raw!) // a syntax error of MATCH / COUNT / TYPE: Redis's words
    const next = String(value[0])
    const found = (value[1] as Buffer[]).filter((k) => !isReservedKey(k))
    const last = next === '0' && pos.index + 1 >= order.length
    const cursor = last ? '0' : encodeScanCursor(next === '0' ? {index: pos.index + 1, serverCursor: '0'} : {index: pos.index, serverCursor: next}, epoch)
    reply(encodeValue([cursor, found]))
  })
}

/**
 * RANDOMKEY: a random group's random key; an internal key or an empty group tries another, and after
 * 4 tries per group the first user key a SCAN finds (nil only when there is none).
 */
function randomKey(ctx: FanoutContext, session: Session, slot: ReplySlot): void {
  const groups = ctx.table.groups.filter((g) => g.master)
  let tries = groups.length * 4
  const attempt = () => {
    if (groups.length === 0) return session.fill(slot, encodeBulk(null))
    // Only rstore's own keys came up: a group may hold nothing else; look for any user key.
    if (tries-- <= 0) return firstKeyByScan(ctx.pool, session, groups, slot)
    const g = groups[Math.floor(Math.random() * groups.length)]!
    ctx.pool.get(g.master, session.id).send(encodeCommand(['RANDOMKEY']), (raw, err) => {
      if (err) return session.fill(slot, encodeError(`ERR group ${g.id}: ${err}`))
      const value = decodeReplyOrError(raw!)
      if (value === null || (Buffer.isBuffer(value) && isReservedKey(value))) return attempt()
      session.fill(slot, value instanceof RespError ? encodeError(value.message) : raw!)
    })
  }
  attempt()
}
