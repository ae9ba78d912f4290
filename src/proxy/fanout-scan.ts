/**
 * KEYS and FLUSHDB / FLUSHALL built on each group's SCAN (docs/proxy-fanout.md, "Why SCAN"): the
 * proxy's backend ACL user may not run KEYS or FLUSHDB (docs/security.md: a script sent with EVAL
 * could run them on one group, past the proxy's checks), while SCAN, DEL and UNLINK are ordinary.
 */
import {decodeReplyOrError, encodeCommand, encodeError, encodeValue, OK, RespError} from '../resp/resp.js'
import {isReservedKey} from '../topology/internal-keys.js'
import type {BackendPool} from '../resp/backend.js'
import type {ReplySlot, Session} from './session.js'

type Group = {id: number; master: string}
const BATCH = '1000'

/**
 * Runs one group's full SCAN (with extra options such as MATCH): onKeys gets each batch of user keys
 * (rstore's own left out); done gets '' at the end or the error reply text.
 */
function scanGroup(pool: BackendPool, session: Session, g: Group, opts: Buffer[], onKeys: (keys: Buffer[]) => void, done: (err: string | Buffer) => void): void {
  const step = (cursor: string) => {
    pool.get(g.master, session.id).send(encodeCommand(['SCAN', cursor, ...opts, 'COUNT', BATCH]), (raw, err) => {
      if (err) return done(`ERR group ${g.id}: ${err}`)
      const value = decodeReplyOrError(raw!)
      if (!Array.isArray(value)) return done(value instanceof RespError ? encodeError(value.message) : raw!)
      const keys = (value[1] as Buffer[]).filter((k) => !isReservedKey(k))
      if (keys.length) onKeys(keys)
      const next = String(value[0])
      if (next === '0') done('')
      else step(next)
    })
  }
  step('0')
}

/** Holds the session's later commands until fill; then lets them run. */
function holdUntil(session: Session): (reply: Buffer, slot: ReplySlot) => void {
  session.held = session.held ?? []
  return (reply, slot) => {
    session.fill(slot, reply)
    session.release()
  }
}

/**
 * KEYS pattern: each group's SCAN MATCH pattern, groups one after the other in scan order (a key moving
 * between groups is seen on its source or its target), duplicates dropped.
 */
export function keysByScan(pool: BackendPool, session: Session, order: Group[], pattern: Buffer, slot: ReplySlot): void {
  const finish = holdUntil(session)
  const seen = new Set<string>()
  const found: Buffer[] = []
  const next = (i: number) => {
    const g = order[i]
    if (!g) return finish(encodeValue(found), slot)
    scanGroup(pool, session, g, [Buffer.from('MATCH'), pattern], (keys) => {
      for (const k of keys) {
        const id = k.toString('latin1')
        if (!seen.has(id)) {
          seen.add(id)
          found.push(k)
        }
      }
    }, (err) => (err ? finish(typeof err === 'string' ? encodeError(err) : err, slot) : next(i + 1)))
  }
  next(0)
}

/**
 * FLUSHDB / FLUSHALL: every user key of every group deleted (DEL, or UNLINK for ASYNC) batch by batch
 * as SCAN finds it, all groups at once. Keys written by other clients meanwhile may survive.
 */
export function flushByScan(pool: BackendPool, session: Session, groups: Group[], async: boolean, slot: ReplySlot): void {
  const finish = holdUntil(session)
  if (groups.length === 0) return finish(OK, slot)
  let waiting = groups.length
  let error: Buffer | null = null
  for (const g of groups) {
    const conn = pool.get(g.master, session.id)
    scanGroup(pool, session, g, [], (keys) => {
      conn.send(encodeCommand([async ? 'UNLINK' : 'DEL', ...keys]), (raw, err) => {
        if (err || raw![0] === 0x2d) error = error ?? encodeError(`ERR group ${g.id}: ${err ?? (decodeReplyOrError(raw!) as {message: string}).message}`)
      })
    }, (err) => {
      if (err) error = error ?? (typeof err === 'string' ? encodeError(err) : err)
      if (--waiting === 0) finish(error ?? OK, slot)
    })
  }
}

/** The first user key SCAN finds, group after group, or nil (RANDOMKEY when random picks found none). */
export function firstKeyByScan(pool: BackendPool, session: Session, order: Group[], slot: ReplySlot): void {
  const finish = holdUntil(session)
  let found: Buffer | null = null
  const next = (i: number) => {
    const g = order[i]
    if (!g || found) return finish(encodeValue(found), slot)
    scanGroup(pool, session, g, [], (keys) => {
      found = found ?? keys[0]!
    }, (err) => (err ? finish(typeof err === 'string' ? encodeError(err) : err, slot) : next(i + 1)))
  }
  next(0)
}
