/**
 * What the migrate / rebalance / jobs commands share: flags, option building, running a job with
 * Ctrl-C handling, and the text of a summary.
 */
import {Flags} from '@oclif/core'
import {join} from 'node:path'
import type {RstoreConfig} from '../config.js'
import {ConflictError, NotFoundError} from '../errors.js'
import {withTopologyStore} from '../service/context.js'
import {table} from './table.js'
import {lowerPriority, withStopSignal} from './job-front.js'
import {MigrationProgressView} from './migration-progress.js'
import {getJob, openCheckpoints, openExistingCheckpoints as openCheckpointsIfAny, setJobControl, updateJob, type CheckpointDb, type Job} from '../migrate/checkpoints.js'
import {jobAlive, type JobView} from '../service/jobs.js'
import {unfinishedError, type BackfillCheckpoint} from '../migrate/backfill.js'
import {MigrationLock} from '../migrate/lock.js'
import {MIGRATION_KINDS, MigrationStore, type MigrationProgress} from '../migrate/migration-store.js'
import {runMigrationJob, type JobRequest} from '../migrate/job.js'
import type {JobSummary} from '../migrate/job-result.js'
import {DEFAULT_MOVE_OPTIONS, type MoveOptions} from '../migrate/move-options.js'
import {formatDuration} from '../migrate/progress.js'
import type {RebalancePlan} from '../migrate/rebalance-plan.js'

export const moveFlags = {
  delay: Flags.integer({description: "sleep this many ms after each key moved (Reborn's --delay; moves one key per MIGRATE unless --batch)", default: 0, min: 0}),
  rate: Flags.integer({description: 'move at most this many keys per second (0 = no limit)', default: 0, min: 0}),
  batch: Flags.integer({description: `keys per MIGRATE or DUMP/RESTORE script call (default ${DEFAULT_MOVE_OPTIONS.batch})`, min: 1, max: 100_000}),
  'hold-ms': Flags.integer({
    description:
      "move a slot's keys while the proxies hold its commands (fast DUMP/RESTORE) for at most this many ms, then release it and finish with MIGRATE (0 = MIGRATE only)",
    default: DEFAULT_MOVE_OPTIONS.holdMs,
    min: 0,
  }),
  'barrier-timeout': Flags.integer({
    description: 'seconds to wait for every proxy to acknowledge a slot change before stopping (the job stays resumable)',
    default: DEFAULT_MOVE_OPTIONS.barrierTimeoutSec,
    min: 1,
  }),
  'big-key': Flags.integer({
    description: 'keys larger than this many bytes (MEMORY USAGE) are reported and moved alone, with a longer timeout',
    default: DEFAULT_MOVE_OPTIONS.bigKeyBytes,
    min: 1,
  }),
  nice: Flags.integer({
    description: "lower the mover's CPU priority to this nice value, so that proxies and Redis servers on its host serve first (0 = leave it)",
    default: DEFAULT_MOVE_OPTIONS.nice,
    min: 0,
    max: 19,
  }),
  'lock-ttl': Flags.integer({description: 'lease TTL of the migration lock, seconds', default: DEFAULT_MOVE_OPTIONS.lockTtlSec, min: 1, hidden: true}),
}

export interface MoveFlagValues {
  delay: number
  rate: number
  batch?: number
  'barrier-timeout': number
  'big-key': number
  'lock-ttl': number
  'hold-ms': number
  nice: number
}

export function moveOptions(f: MoveFlagValues): MoveOptions {
  return {
    ...DEFAULT_MOVE_OPTIONS,
    delayMs: f.delay,
    rate: f.rate,
    // Reborn moved one key at a time and slept --delay after each.
    batch: f.batch ?? (f.delay > 0 ? 1 : DEFAULT_MOVE_OPTIONS.batch),
    barrierTimeoutSec: f['barrier-timeout'],
    bigKeyBytes: f['big-key'],
    lockTtlSec: f['lock-ttl'],
    holdMs: f['hold-ms'],
    nice: f.nice,
  }
}

/** Runs a job with Ctrl-C / SIGTERM stopping it cleanly between batches (a second Ctrl-C exits). */
export async function runJobCommand(cfg: RstoreConfig, req: JobRequest, opts: MoveOptions, ui: {json: boolean; write: (line: string) => void}): Promise<JobSummary> {
  lowerPriority(opts.nice, ui.write)
  const db = openCheckpoints(cfg.checkpointDir, cfg.product)
  try {
    return await withStopSignal(ui.write, 'stopping after the batch in flight (Ctrl-C again to exit now)...', (signal) =>
      withTopologyStore(cfg, (store) => runMigrationJob(store, db, req, opts, new MigrationProgressView({tty: !ui.json && Boolean(process.stderr.isTTY), quiet: ui.json, write: ui.write}), signal)),
    )
  } finally {
    db.close()
  }
}

function bytes(n: number): string {
  if (n >= 1024 * 1024 * 1024) return `${(n / 1024 / 1024 / 1024).toFixed(1)} GiB`
  if (n >= 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MiB`
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`
  return `${n} B`
}

export function summaryText(s: JobSummary): string {
  if (s.state === 'nothing-to-do') return s.message ?? 'nothing to do'
  const lines = [
    `job ${s.job} ${s.state}${s.resumed ? ' (resumed)' : ''}: ${s.slotsDone}/${s.slotsTotal} slot(s) moved` +
      (s.slotsCancelled ? `, ${s.slotsCancelled} left in place by the cancel` : '') +
      (s.slotsSkipped ? `, ${s.slotsSkipped} already in place` : ''),
    `  keys moved: ${s.keysMoved} (${bytes(s.bytesMoved)} this run) in ${formatDuration(s.seconds)} (${s.seconds.toFixed(1)} s), ${s.keysPerSecond} keys/s while moving`,
    `  MIGRATE calls: ${(s.migrateMs / 1000).toFixed(1)} s; topology changes: ${s.changes} (${s.changes ? (s.changeMs / s.changes).toFixed(0) : 0} ms each), barriers: ${s.barriers} (${s.barriers ? (s.barrierWaitMs / s.barriers).toFixed(0) : 0} ms each on average)`,
  ]
  if (s.bigKeys.length) {
    lines.push(`  big keys (moved alone): ${s.bigKeys.length}`)
    for (const b of s.bigKeys.slice(0, 10)) lines.push(`    slot ${b.slot}  ${b.key}  ${bytes(b.bytes)}  source stalled ${b.stallMs} ms`)
  }
  return lines.join('\n')
}

export function planText(plan: RebalancePlan): string {
  const shares = table(
    ['group', plan.by === 'memory' ? 'maxmemory' : 'weight', 'share', 'slots now', 'slots after'],
    plan.groups.map((g) => [g.group, plan.by === 'memory' ? bytes(g.weight) : g.weight, g.share.toFixed(2), g.current, g.target]),
  )
  if (!plan.moves.length) return `${shares}\n\nalready balanced: nothing to move`
  const ranges = table(
    ['slots', 'count', 'from group', 'to group'],
    plan.ranges.map((r) => [r.from === r.to ? `${r.from}` : `${r.from}-${r.to}`, r.count, r.fromGroup, r.toGroup]),
  )
  return `${shares}\n\nplan: move ${plan.moves.length} slot(s)\n${ranges}`
}

/** The checkpoint file, or undefined when it does not exist yet (no job ever ran). */
export function openExistingCheckpoints(cfg: RstoreConfig): CheckpointDb | undefined {
  return openCheckpointsIfAny(cfg.checkpointDir, cfg.product)
}

function argsText(kind: string, a: Record<string, unknown>): string {
  if (kind === 'migrate') return `${a.from}-${a.to} -> group ${a.group}`
  if (kind === 'rebalance') return `by ${a.by}`
  return Object.entries(a)
    .filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : v}`)
    .join(' ')
    .slice(0, 60)
}

function progressText(kind: string, p: Record<string, unknown>): string {
  if ((MIGRATION_KINDS as readonly string[]).includes(kind)) {
    const m = p as MigrationProgress
    return `${m.slotsDone}/${m.slotsTotal} slots, ${m.keysMoved} keys${m.currentSlot >= 0 ? `, slot ${m.currentSlot}` : ''}${m.phase && m.phase !== 'finished' && m.phase !== 'move' ? `, ${m.phase}` : ''}`
  }
  const nums = Object.entries(p).filter(([k, v]) => typeof v === 'number' && k !== 'pid')
  const counters = (p.counters ?? {}) as Record<string, unknown>
  const more = Object.entries(counters).filter(([, v]) => typeof v === 'number')
  return [...nums, ...more]
    .slice(0, 5)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ')
}

export function listingText(rows: JobView[]): string {
  if (!rows.length) return 'no jobs'
  return table(
    ['id', 'kind', 'arguments', 'state', 'progress', 'updated'],
    rows.map((r) => [
      r.id,
      r.kind,
      argsText(r.kind, r.args),
      r.state,
      progressText(r.kind, r.progress),
      new Date(r.updatedAt).toISOString().replace('T', ' ').slice(0, 19),
    ]),
  )
}

/**
 * `rstore jobs pause|resume|cancel <id>`: writes the request into the checkpoint file; the job reads
 * it between batches. Migrations (migrate, rebalance) and backfills take all three. Returns whether
 * the job is running; `settled` says the request was completed here (a stopped backfill cancelled).
 */
export async function requestControl(
  cfg: RstoreConfig,
  id: string,
  control: 'pause' | 'run' | 'cancel',
): Promise<{job: Job; running: boolean; settled?: string}> {
  const db = openExistingCheckpoints(cfg)
  if (!db) throw new NotFoundError(`no job '${id}': there is no checkpoint file ${join(cfg.checkpointDir, `${cfg.product}.db`)}`)
  try {
    const ms = new MigrationStore(db)
    const job = ms.job(id) ?? getJob(db, id)
    if (!job) throw new NotFoundError(`no job '${id}'`, "see 'rstore jobs'")
    if (job.state === 'done' || job.state === 'cancelled') throw new ConflictError(`job ${id} is already ${job.state}`)
    if (job.kind === 'backfill') return backfillControl(db, job, control)
    if (!(MIGRATION_KINDS as readonly string[]).includes(job.kind)) {
      throw new ConflictError(`job ${id} is a ${job.kind} job: only migrate, rebalance and backfill jobs take pause/resume/cancel`)
    }
    const holder = await withTopologyStore(cfg, (store) => MigrationLock.holder(store))
    const running = holder?.job === id
    if (control === 'pause' && !running) {
      const progress = job.progress as {error?: string}
      throw new ConflictError(`job ${id} is not running (${job.state}${progress.error ? `: ${progress.error}` : ''}); nothing to pause`, `resume it with 'rstore jobs resume ${id}'`)
    }
    ms.setControl(id, control)
    return {job, running}
  } finally {
    db.close()
  }
}

/** A backfill reads its control between batches; one that is not running is resumed by its own command. */
function backfillControl(db: CheckpointDb, job: Job, control: 'pause' | 'run' | 'cancel'): {job: Job; running: boolean; settled?: string} {
  const running = jobAlive(job)
  const again = unfinishedError(job as unknown as Job<BackfillCheckpoint>).hint
  if (!running && control === 'pause') throw new ConflictError(`backfill job ${job.id} is not running (${job.state}); nothing to pause`, again)
  if (!running && control === 'run') throw new ConflictError(`backfill job ${job.id} is not running (${job.state}); 'rstore jobs resume' only continues a paused running backfill`, again)
  if (!running) {
    // Nothing copies any more: the job is over; the keys it copied stay (set-if-absent copies are harmless).
    updateJob(db, job.id, {state: 'cancelled'})
    return {job, running, settled: `backfill job ${job.id} cancelled (it was not running; the keys it copied stay on the target)`}
  }
  setJobControl(db, job.id, control)
  return {job, running}
}

export {MigrationStore}
