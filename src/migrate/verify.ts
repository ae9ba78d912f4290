/**
 * Verify (docs/architecture.md, "SQL routing, cutover, backfill, verify"): compare every selected key of a source with a target (type, value,
 * TTL within a tolerance), throttled, in rounds like redis-full-check: round 1 compares everything,
 * each later round re-reads only the previous round's differences, so keys that were merely in flight
 * converge away. A key missing on the target whose source copy has since expired (or been deleted)
 * is not a difference. --repair copies the source's value over each remaining difference.
 */
import {setTimeout as sleep} from 'node:timers/promises'
import {openStore, parseHostPort, parseStoreUrl, type KeySnapshot, type KeyStore, type StoreUrl} from '../backends/index.js'
import {compareSnapshots, type DiffReason} from '../backends/snapshot.js'
import {ValidationError} from '../errors.js'
import {slotOf, SLOT_COUNT} from '../topology/slots.js'
import {showKey} from '../topology/key-text.js'
import {RateLimiter} from './rate-limit.js'

export interface VerifyOptions {
  from: string
  to: string
  /** host:port (Redis) or a store URL. */
  source: string
  target: string
  match: string
  /** Inclusive slot range, e.g. [0, 511]. */
  slots?: [number, number]
  /** TTL difference tolerated, ms. */
  ttlTolerance: number
  rounds: number
  /** Seconds between rounds. */
  interval: number
  repair: boolean
  /** Keys per second (0: unlimited). */
  rate: number
  batch: number
  /** Differences listed in the result. */
  maxKeys: number
  /** Stops after the batch in flight when aborted (Ctrl-C, a server's cancel): the result says 'stopped'. */
  signal?: AbortSignal
  /** Called after every batch compared (a CLI line, a server's job view). */
  onProgress?: (p: VerifyProgress) => void
}

export interface VerifyProgress {
  round: number
  compared: number
  /** Differences found so far in this round. */
  differences: number
  keysPerSec: number
}

export interface KeyDiff {
  key: string
  reason: DiffReason
  detail: string
  repaired?: boolean
}

export interface VerifyResult {
  /** stopped: by the signal, before every key was compared (the counts are what was compared). */
  state: 'done' | 'stopped'
  compared: number
  equal: number
  different: number
  missing: number
  repaired: number
  rounds: number
  keys: KeyDiff[]
}

export function parseSlots(text: string): [number, number] {
  const m = /^(\d+)(?:-(\d+))?$/.exec(text)
  const a = m ? Number(m[1]) : NaN
  const b = m ? Number(m[2] ?? m[1]) : NaN
  if (!m || a > b || b >= SLOT_COUNT) throw new ValidationError(`bad --slots '${text}': use a-b with 0 <= a <= b < ${SLOT_COUNT}`)
  return [a, b]
}

/** Opens a side: host:port or redis:// for Redis, a URL for SQL; its kind must match --from/--to. */
function sideUrl(kind: string, text: string, flag: string): StoreUrl {
  if (!['redis', 'mysql', 'postgres'].includes(kind)) throw new ValidationError(`--${flag === 'source' ? 'from' : 'to'} must be redis, mysql or postgres (got '${kind}')`)
  let url: StoreUrl
  if (!text.includes('://')) {
    const {host, port} = parseHostPort(text, `--${flag}`)
    url = parseStoreUrl(`redis://${host.includes(':') ? `[${host}]` : host}:${port}`)
  } else url = parseStoreUrl(text)
  if (url.kind !== kind) throw new ValidationError(`--${flag} ${url.display} is a ${url.kind} store but --${flag === 'source' ? 'from' : 'to'} is ${kind}`)
  return url
}

export async function verify(o: VerifyOptions): Promise<VerifyResult> {
  const su = sideUrl(o.from, o.source, 'source')
  const tu = sideUrl(o.to, o.target, 'target')
  if (!(o.rounds >= 1)) throw new ValidationError('--rounds must be at least 1')
  if (!(o.interval >= 0)) throw new ValidationError('--interval must be 0 or more')
  if (!(o.ttlTolerance >= 0)) throw new ValidationError('--ttl-tolerance must be 0 or more')
  const source = await openStore(su, {reapIntervalMs: 0})
  let target: KeyStore | undefined
  try {
    target = await openStore(tu, {reapIntervalMs: 0})
    return await run(o, source, target)
  } finally {
    await source.close().catch(() => {})
    await target?.close().catch(() => {})
  }
}

async function run(o: VerifyOptions, source: KeyStore, target: KeyStore): Promise<VerifyResult> {
  const limiter = new RateLimiter(o.rate)
  const dump = o.repair && target.kind === 'redis' && source.kind === 'redis'
  let diffs = new Map<string, {key: Buffer; reason: DiffReason; detail: string; snap: KeySnapshot}>()
  let compared = 0
  let round = 1
  let checkedThisRound = 0
  const started = performance.now()
  const stopped = () => o.signal?.aborted === true
  const report = (differences: number) =>
    o.onProgress?.({round, compared, differences, keysPerSec: Math.round((compared + checkedThisRound) / Math.max((performance.now() - started) / 1000, 0.001))})

  /** ordered: the source first, then the target (later rounds): a copy in flight lands before the target's read. */
  const check = async (keys: Buffer[], ordered = false) => {
    await limiter.take(keys.length)
    const [srcs, dsts] = ordered
      ? [await source.readKeys(keys, {dump}), await target.readKeys(keys)]
      : await Promise.all([source.readKeys(keys, {dump}), target.readKeys(keys)])
    const out: {key: Buffer; reason: DiffReason; detail: string; snap: KeySnapshot}[] = []
    let n = 0
    keys.forEach((key, i) => {
      const s = srcs[i]
      if (!s) return // gone from the source (expired or deleted): nothing to compare
      n++
      const d = compareSnapshots(s, dsts[i], o.ttlTolerance)
      if (d) out.push({key, ...d, snap: s})
    })
    return {n, out}
  }

  // Round 1: everything the pattern (and slot range) selects.
  const inRange = (k: Buffer) => !o.slots || ((s) => s >= o.slots![0] && s <= o.slots![1])(slotOf(k))
  let cursor = '0'
  const seen = new Set<string>()
  do {
    const page = await source.scan(cursor, o.match, Math.max(o.batch, 1000))
    cursor = page.cursor
    const keys = page.keys.filter((k) => {
      const h = k.toString('latin1')
      if (seen.has(h) || !inRange(k)) return false
      seen.add(h)
      return true
    })
    for (let i = 0; i < keys.length && !stopped(); i += o.batch) {
      const {n, out} = await check(keys.slice(i, i + o.batch))
      compared += n
      for (const d of out) diffs.set(d.key.toString('latin1'), d)
      report(diffs.size)
    }
  } while (cursor !== '0' && !stopped())

  // Later rounds: only the previous round's differences.
  for (; round < o.rounds && diffs.size > 0 && !stopped(); ) {
    await sleep(o.interval * 1000, undefined, {signal: o.signal}).catch(() => {})
    if (stopped()) break
    round++
    const keys = [...diffs.values()].map((d) => d.key)
    const next = new Map<string, {key: Buffer; reason: DiffReason; detail: string; snap: KeySnapshot}>()
    checkedThisRound = 0
    for (let i = 0; i < keys.length; i += o.batch) {
      // Stopped mid-round: the keys not re-read yet keep the previous round's difference.
      if (stopped()) {
        for (const k of keys.slice(i)) next.set(k.toString('latin1'), diffs.get(k.toString('latin1'))!)
        break
      }
      const batch = keys.slice(i, i + o.batch)
      for (const d of (await check(batch, true)).out) next.set(d.key.toString('latin1'), d)
      checkedThisRound += batch.length
      report(next.size)
    }
    diffs = next
  }
  const rounds = round

  const keys: KeyDiff[] = []
  let repaired = 0
  let different = 0
  let missing = 0
  for (const d of diffs.values()) {
    let fixed = false
    if (o.repair && !stopped()) {
      // Re-read the source right before copying, so the latest value goes over.
      const fresh = await source.readKey(d.key, {dump})
      if (fresh) await target.writeKey(d.key, fresh) // (gone from the source since: nothing to copy)
      fixed = true
      repaired++
    }
    if (!fixed) {
      if (d.reason === 'missing') missing++
      else different++
    }
    if (keys.length < o.maxKeys) keys.push({key: showKey(d.key), reason: d.reason, detail: d.detail, ...(o.repair ? {repaired: fixed} : {})})
  }
  return {state: stopped() ? 'stopped' : 'done', compared, equal: compared - diffs.size, different, missing, repaired, rounds, keys}
}
