/**
 * Backfill (docs/architecture.md, "SQL routing, cutover, backfill, verify"): copy every key of a Redis source selected by a pattern to a target
 * key store (MySQL, PostgreSQL or Redis) with set-if-absent semantics, so that a newer value written
 * on the target by double-write is never overwritten. Scan pages are split into batches that run
 * `concurrency` at a time (reads pipelined, writes one transaction per batch); the SCAN cursor and the
 * counters are checkpointed, page by page in scan order, in the product's SQLite file, so a killed
 * backfill re-run with the same arguments continues after the last finished page.
 */
import {hostname} from 'node:os'
import {setTimeout as sleep} from 'node:timers/promises'
import pLimit from 'p-limit'
import {openStore, parseHostPort, parseStoreUrl, RedisStore, type KeySnapshot, type KeyStore} from '../backends/index.js'
import {globMatch} from '../backends/glob.js'
import type {TopologyStore} from '../coord/topology-store.js'
import {ConflictError, NotFoundError, RstoreError, ValidationError} from '../errors.js'
import {masterOf} from '../topology/model.js'
import {showKey} from '../topology/key-text.js'
import {createJob, findJobs, findUnfinishedJob, jobControl, type JobControl, openCheckpoints, openExistingCheckpoints, processAlive, setJobControl, UNFINISHED, updateJob, type CheckpointDb, type Job} from './checkpoints.js'
import {ControlPoll} from './control-poll.js'
import {RateLimiter} from './rate-limit.js'

export interface BackfillOptions {
  from: string
  to: string
  /** host:port of the Redis source. */
  source: string
  /** Target store URL. */
  target: string
  match: string
  concurrency: number
  /** Keys per second (0: unlimited). */
  rate: number
  /** Milliseconds slept after each key copied (Reborn's --delay), per worker. */
  delay: number
  /** Keys per batch (one read pipeline + one write transaction). */
  batch: number
  checkpointDir: string
  product: string
  /** Attempts per batch / key before a key is recorded as failed. */
  retries?: number
  onProgress?: (p: BackfillProgress) => void
  /** Called once the job is known (new or resumed), before copying. */
  onStart?: (info: {job: string; resumed: boolean; total: number; done: number}) => void
  /** Stops after the batches in flight when aborted (SIGINT, a server's stop); the job is left paused. */
  signal?: AbortSignal
  /** How often a job paused by `rstore jobs pause` looks for a resume or cancel, ms (default 200). */
  pollMs?: number
}

export interface BackfillCounters {
  scanned: number
  copied: number
  skipped: number
  /** Gone from the source: expired or deleted before its copy (or right after it, the copy undone). */
  expired: number
  failed: number
}

export interface BackfillCheckpoint extends BackfillCounters {
  cursor: string
  pages: number
  pid: number
  host: string
  error?: string
}

export interface BackfillProgress extends BackfillCounters {
  /** Source DBSIZE when the run started (all keys; the pattern may select fewer). */
  total: number
  keysPerSec: number
  etaSeconds: number | null
  /** Paused in place by `rstore jobs pause` (waiting for `jobs resume` or `jobs cancel`). */
  paused: boolean
}

export interface BackfillResult extends BackfillCounters {
  job: string
  resumed: boolean
  /** paused: stopped by the signal, resumable; cancelled: by `rstore jobs cancel` (copies made stay). */
  state: 'done' | 'paused' | 'cancelled'
  total: number
  seconds: number
  keysPerSec: number
  /** Keys that failed every attempt (first 100), with the last error. */
  failedKeys: {key: string; error: string}[]
}

const ZERO: BackfillCounters = {scanned: 0, copied: 0, skipped: 0, expired: 0, failed: 0}

/** Renders a key for messages and JSON: text when it is printable UTF-8, else `0x<hex>`. */
async function retry<X>(attempts: number, fn: () => Promise<X>): Promise<X> {
  for (let i = 1; ; i++) {
    try {
      return await fn()
    } catch (e) {
      if (i >= attempts) throw e
      await sleep(50 * 2 ** i)
    }
  }
}

export function checkBackfillArgs(o: Pick<BackfillOptions, 'from' | 'to' | 'source' | 'target' | 'match' | 'concurrency' | 'rate' | 'delay' | 'batch'>) {
  if (o.from !== 'redis') throw new ValidationError(`--from ${o.from} is not supported: backfill copies from redis`)
  if (!['mysql', 'postgres', 'redis'].includes(o.to)) throw new ValidationError(`--to must be mysql, postgres or redis (got '${o.to}')`)
  const source = parseHostPort(o.source, '--source')
  const target = parseStoreUrl(o.target)
  if (target.kind !== o.to) throw new ValidationError(`--target ${target.display} is a ${target.kind} URL but --to is ${o.to}`)
  if (!o.match) throw new ValidationError('--match must not be empty')
  if (!(o.concurrency >= 1)) throw new ValidationError('--concurrency must be at least 1')
  if (!(o.rate >= 0)) throw new ValidationError('--rate must be 0 (unlimited) or more')
  if (!(o.delay >= 0)) throw new ValidationError('--delay must be 0 or more')
  if (!(o.batch >= 1)) throw new ValidationError('--batch must be at least 1')
  return {source, target}
}

/**
 * `--group N`: the address of the group's master, read from the coordinator's topology (the source
 * of a backfill or verify that names a server group instead of a host:port).
 */
export async function groupMasterAddr(store: Pick<TopologyStore, 'load'>, group: number): Promise<string> {
  if (!Number.isInteger(group) || group < 1) throw new ValidationError(`--group must be a group id (a positive integer), got '${group}'`)
  const topo = await store.load()
  const g = topo.groups.get(group)
  if (!g) throw new NotFoundError(`group ${group} does not exist${topo.groups.size ? ` (groups: ${[...topo.groups.keys()].sort((a, b) => a - b).join(', ')})` : ''}`)
  const m = masterOf(g)
  if (!m) throw new ValidationError(`group ${group} has no master`, `add one with 'rstore server add ${group} <host:port> master'`)
  return m.addr
}

/** Finds one key matching the pattern (SCAN until found or done): a pattern matching nothing is refused. */
async function anyMatch(store: KeyStore, match: string): Promise<boolean> {
  let cursor = '0'
  do {
    const page = await store.scan(cursor, match, 1000)
    if (page.keys.length) return true
    cursor = page.cursor
  } while (cursor !== '0')
  return false
}

function ensureFailedTable(db: CheckpointDb): void {
  db.exec(`CREATE TABLE IF NOT EXISTS backfill_failed (
    job_id TEXT NOT NULL,
    key BLOB NOT NULL,
    error TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (job_id, key)
  )`)
}

interface Page {
  cursorAfter: string
  counters: BackfillCounters
  failed: {key: Buffer; error: string}[]
  done: boolean
  /** A batch of it was not copied (stopped or cancelled): never committed, so a resume scans it again. */
  incomplete: boolean
  promise: Promise<void>
}

export async function backfill(o: BackfillOptions): Promise<BackfillResult> {
  const {source: src, target: tgt} = checkBackfillArgs(o)
  const args = {from: o.from, to: o.to, source: `${src.host}:${src.port}`, target: tgt.display, match: o.match}
  const attempts = Math.max(1, o.retries ?? 3)
  const source = await RedisStore.open({host: src.host, port: src.port, display: `redis://${src.host}:${src.port}`})
  let target: KeyStore | undefined
  let db: CheckpointDb | undefined
  try {
    // Validate everything before writing anything (no tables, no checkpoint file).
    const probe = openExistingCheckpoints(o.checkpointDir, o.product)
    const existing = probe ? findUnfinishedJob<BackfillCheckpoint>(probe, 'backfill', args) : undefined
    // docs/architecture.md, "Jobs and checkpoints": a different backfill while one is unfinished is refused; the unfinished one is finished first.
    const other = probe && !existing ? findJobs<BackfillCheckpoint>(probe, 'backfill', {states: UNFINISHED})[0] : undefined
    probe?.close()
    if (other) throw unfinishedError(other)
    if (!existing && !(await anyMatch(source, o.match))) {
      throw new ValidationError(`no key on redis ${args.source} matches '${o.match}': nothing to copy`)
    }
    target = await openStore(tgt, {reapIntervalMs: 0})
    db = openCheckpoints(o.checkpointDir, o.product)
    ensureFailedTable(db)
    return await run(o, args, attempts, source, target, db)
  } finally {
    await source.close().catch(() => {})
    await target?.close().catch(() => {})
    db?.close()
  }
}

/** The refusal of a new backfill while another one is unfinished: names it and the command that finishes it. */
export function unfinishedError(job: Job<BackfillCheckpoint>): ConflictError {
  const a = job.args as Record<string, string>
  const p = job.progress
  const cmd = `rstore backfill --from ${a.from} --to ${a.to} --source ${a.source} --target ${a.target} --match '${a.match}'`
  const alive = job.state === 'running' && p.host === hostname() && processAlive(p.pid)
  return new ConflictError(
    `backfill job ${job.id} is unfinished (${alive ? `running, pid ${p.pid}` : job.state}; ${p.scanned ?? 0} keys scanned, ${p.copied ?? 0} copied` +
      `${p.error ? `; last error: ${p.error}` : ''})`,
    alive
      ? `wait for it to finish, or stop it with 'rstore jobs pause|cancel ${job.id}'`
      : `finish it first by re-running the same command: ${cmd} (the target URL with its password), or drop it with 'rstore jobs cancel ${job.id}'`,
  )
}

async function run(o: BackfillOptions, args: Record<string, string>, attempts: number, source: RedisStore, target: KeyStore, db: CheckpointDb): Promise<BackfillResult> {
  let job = findUnfinishedJob<BackfillCheckpoint>(db, 'backfill', args)
  if (job && job.state === 'running' && job.progress.host === hostname() && job.progress.pid !== process.pid && processAlive(job.progress.pid)) {
    throw new ConflictError(`backfill job ${job.id} with these arguments is already running (pid ${job.progress.pid})`)
  }
  for (const other of findJobs<BackfillCheckpoint>(db, 'backfill', {states: ['running']})) {
    if (other.id !== job?.id && other.progress.host === hostname() && processAlive(other.progress.pid)) {
      throw new ConflictError(`another backfill job is running: ${other.id} (${JSON.stringify(other.args)}, pid ${other.progress.pid}); wait for it or stop it first`)
    }
  }
  const resumed = !!job
  const me = {pid: process.pid, host: hostname()}
  if (!job) {
    job = createJob<BackfillCheckpoint>(db, 'backfill', args, {...ZERO, cursor: '0', pages: 0, ...me})
  } else {
    job.progress = {...job.progress, ...me, error: undefined}
    updateJob(db, job.id, {state: 'running', progress: job.progress})
  }
  const jobId = job.id
  // Started by hand (and now the only copier): a pause left by a copier that died paused no longer applies.
  if (jobControl(db, jobId) === 'pause') setJobControl(db, jobId, 'run')
  const committed: BackfillCheckpoint = {...job.progress}
  const inflight: BackfillCounters = {...ZERO}
  const total = await source.dbsize()
  const startDone = committed.scanned
  const started = Date.now()
  o.onStart?.({job: jobId, resumed, total, done: startDone})

  const insertFailed = db.prepare('INSERT OR REPLACE INTO backfill_failed (job_id, key, error, at) VALUES (?, ?, ?, ?)')
  const commitPage = db.transaction((page: Page, final: boolean) => {
    for (const k of Object.keys(ZERO) as (keyof BackfillCounters)[]) committed[k] += page.counters[k]
    committed.cursor = page.cursorAfter
    committed.pages++
    for (const f of page.failed) insertFailed.run(jobId, f.key, f.error, Date.now())
    updateJob(db, jobId, {progress: committed, state: final ? 'done' : undefined})
  })

  const progress = (): BackfillProgress => {
    const done = committed.scanned + inflight.scanned
    const secs = (Date.now() - started) / 1000
    const kps = secs > 0 ? (done - startDone) / secs : 0
    const left = Math.max(0, total - done)
    return {...sum(committed, inflight), total, keysPerSec: kps, etaSeconds: kps > 0 ? left / kps : null, paused}
  }
  const ticker = o.onProgress ? setInterval(() => o.onProgress!(progress()), 500) : undefined

  const limiter = new RateLimiter(o.rate)
  const batchSize = o.rate > 0 ? Math.max(1, Math.min(o.batch, Math.ceil(o.rate / 10))) : o.batch
  const scanCount = Math.max(100, batchSize, o.match === '*' ? 0 : 1000)
  const limit = pLimit(o.concurrency)
  const dump = target.kind === 'redis'
  const queue: Page[] = []
  let failure: unknown
  let paused = false
  let cancelled = false
  const stopped = () => o.signal?.aborted === true

  const control = new ControlPoll<JobControl>(() => jobControl(db, jobId), 'run')
  /** Checked before each batch: waits in place while paused; false means stop (signal or cancel). */
  const mayContinue = async (): Promise<boolean> => {
    for (;;) {
      if (stopped() || cancelled) return false
      const c = control.latest()
      if (c === 'cancel') {
        cancelled = true
        return false
      }
      paused = c === 'pause'
      if (!paused) return true
      await sleep(o.pollMs ?? 200)
    }
  }

  /**
   * A key deleted on the source after it was read here was also deleted on the target by double-write
   * (or never existed there), so the copy just written would bring it back: the source is read again,
   * and each copied key it no longer has is deleted on the target if it still holds the copy.
   * Returns how many copies were undone (they count as expired).
   */
  const undoDeleted = async (copied: {key: Buffer; snap: KeySnapshot}[]): Promise<number> => {
    if (!copied.length) return 0
    const still = await retry(attempts, () => source.existing(copied.map((e) => e.key)))
    let undone = 0
    for (const [i, e] of copied.entries()) {
      if (still[i]) continue
      if (await retry(attempts, () => target.deleteIfSame(e.key, e.snap))) undone++
    }
    return undone
  }

  const copyBatch = async (keys: Buffer[], page: Page): Promise<void> => {
    if (!(await mayContinue())) {
      page.incomplete = true
      return
    }
    await limiter.take(keys.length)
    const c: BackfillCounters = {...ZERO, scanned: keys.length}
    let snaps: (KeySnapshot | null | Error)[]
    try {
      snaps = await retry(attempts, () => source.readKeys(keys, {dump}))
    } catch {
      snaps = await Promise.all(keys.map((k) => retry(attempts, () => source.readKey(k, {dump})).catch((e: Error) => e)))
    }
    const entries: {key: Buffer; snap: KeySnapshot}[] = []
    snaps.forEach((s, i) => {
      if (s instanceof Error) page.failed.push({key: keys[i], error: `read: ${s.message}`})
      else if (s === null || s.pttl === 0) c.expired++
      else entries.push({key: keys[i], snap: s})
    })
    let written: (boolean | Error)[]
    try {
      written = await retry(attempts, () => target.writeKeysIfAbsent(entries))
    } catch {
      // Isolate the failing key(s): one at a time, each retried.
      written = []
      for (const e of entries) written.push(await retry(attempts, () => target.writeKeyIfAbsent(e.key, e.snap)).catch((err: Error) => err))
    }
    written.forEach((w, i) => {
      if (w instanceof Error) page.failed.push({key: entries[i].key, error: w.message})
      else if (w) c.copied++
      else c.skipped++
    })
    const undone = await undoDeleted(entries.filter((_, i) => written[i] === true))
    c.copied -= undone
    c.expired += undone
    c.failed = keys.length - c.copied - c.skipped - c.expired
    for (const k of Object.keys(ZERO) as (keyof BackfillCounters)[]) {
      page.counters[k] += c[k]
      inflight[k] += c[k]
    }
    if (o.delay > 0) await sleep(o.delay * keys.length)
  }

  /** Commits finished pages in scan order (the cursor only moves past fully copied pages). */
  const drain = () => {
    while (queue.length && queue[0].done) {
      const page = queue.shift()!
      commitPage(page, page.cursorAfter === '0')
      for (const k of Object.keys(ZERO) as (keyof BackfillCounters)[]) inflight[k] -= page.counters[k]
    }
  }

  try {
    let cursor = committed.cursor
    if (committed.pages > 0 && cursor === '0') {
      // A finished scan whose last commit did not mark the job done.
      updateJob(db, jobId, {state: 'done'})
    } else {
      do {
        if (failure || !(await mayContinue())) break
        const scan = await retry(attempts, () => source.scan(cursor, o.match, scanCount))
        const page: Page = {cursorAfter: scan.cursor, counters: {...ZERO}, failed: [], done: false, incomplete: false, promise: Promise.resolve()}
        const batches: Buffer[][] = []
        for (let i = 0; i < scan.keys.length; i += batchSize) batches.push(scan.keys.slice(i, i + batchSize))
        page.promise = Promise.all(batches.map((b) => limit(() => copyBatch(b, page))))
          .then(() => {
            page.done = !page.incomplete
            drain()
          })
          .catch((e) => {
            failure ??= e
          })
        queue.push(page)
        cursor = scan.cursor
        // Back-pressure: keep a bounded number of pages in flight.
        while (queue.length > o.concurrency * 2 && !failure) await queue[0].promise
      } while (cursor !== '0')
      await Promise.all(queue.map((p) => p.promise))
    }
    if (failure) throw failure
  } catch (e) {
    await Promise.all(queue.map((p) => p.promise))
    updateJob(db, jobId, {state: 'failed', progress: {...committed, error: (e as Error).message}})
    throw e instanceof RstoreError ? e : new RstoreError('EBACKFILL', `backfill job ${jobId} failed (re-run the same command to resume): ${(e as Error).message}`)
  } finally {
    if (ticker) clearInterval(ticker)
  }
  const state = committed.cursor === '0' && committed.pages > 0 ? 'done' : cancelled ? 'cancelled' : 'paused'
  if (state !== 'done') updateJob(db, jobId, {state})
  paused = false
  o.onProgress?.(progress())
  const failedKeys = (db.prepare('SELECT key, error FROM backfill_failed WHERE job_id = ? ORDER BY at LIMIT 100').all(jobId) as {key: Buffer; error: string}[]).map(
    (r) => ({key: showKey(r.key), error: r.error}),
  )
  const seconds = (Date.now() - started) / 1000
  return {
    job: jobId,
    resumed,
    state,
    total,
    seconds,
    keysPerSec: seconds > 0 ? (committed.scanned - startDone) / seconds : 0,
    scanned: committed.scanned,
    copied: committed.copied,
    skipped: committed.skipped,
    expired: committed.expired,
    failed: committed.failed,
    failedKeys,
  }
}

function sum(a: BackfillCounters, b: BackfillCounters): BackfillCounters {
  return {scanned: a.scanned + b.scanned, copied: a.copied + b.copied, skipped: a.skipped + b.skipped, expired: a.expired + b.expired, failed: a.failed + b.failed}
}

/** Whether a key is selected by the pattern (exported for verify and tests). */
export function selected(key: Buffer, match: string): boolean {
  return match === '*' || globMatch(Buffer.from(match), key)
}

export type {Job}
