/**
 * The job list and the pause / resume / cancel requests for front-ends that do not run a job in the
 * foreground (the dashboard): the same checkpoint-file rows `rstore jobs` reads and writes
 * (docs/architecture.md "Jobs and checkpoints"). A request a running job cannot take is refused
 * before anything is written.
 */
import {hostname} from 'node:os'
import type {RstoreConfig} from '../config.js'
import type {TopologyStore} from '../coord/topology-store.js'
import {ConflictError, NotFoundError} from '../errors.js'
import {getJob, listJobs, openExistingCheckpoints, processAlive, setJobControl, type Job} from '../migrate/checkpoints.js'
import {MigrationLock} from '../migrate/lock.js'
import {MIGRATION_KINDS, MigrationStore} from '../migrate/migration-store.js'

export interface JobView {
  id: string
  kind: string
  args: Record<string, unknown>
  /** The stored state, or 'interrupted' for a running/paused job whose process (on this host) died. */
  state: string
  running: boolean
  progress: Record<string, unknown>
  createdAt: number
  updatedAt: number
}

/** Whether a job's process is alive (this host only; on other hosts the stored state is shown). */
export function jobAlive(job: Job): boolean {
  const p = job.progress as {host?: string; pid?: number}
  return (job.state === 'running' || job.state === 'paused') && p.host === hostname() && !!p.pid && processAlive(p.pid)
}

/** Every job of the product's checkpoint file (none when the file does not exist yet). */
export function jobViews(cfg: RstoreConfig): JobView[] {
  const db = openExistingCheckpoints(cfg.checkpointDir, cfg.product)
  if (!db) return []
  try {
    return listJobs(db).map((j) => {
      const running = jobAlive(j)
      const local = (j.progress as {host?: string}).host === hostname()
      const state = (j.state === 'running' || j.state === 'paused') && !running && local ? 'interrupted' : j.state
      return {id: j.id, kind: j.kind, args: j.args, state, running, progress: j.progress, createdAt: j.createdAt, updatedAt: j.updatedAt}
    })
  } finally {
    db.close()
  }
}

export type JobRequestKind = 'pause' | 'resume' | 'cancel'

/**
 * Writes a control request for a RUNNING job (migrate, rebalance: the holder of `locks/migration`;
 * backfill: its live process), which reads it between batches. A job that is not running is refused
 * (409) naming the CLI command that continues it in the foreground.
 */
export async function requestRunningJob(cfg: RstoreConfig, store: TopologyStore, id: string, request: JobRequestKind): Promise<{job: string; requested: JobRequestKind}> {
  const db = openExistingCheckpoints(cfg.checkpointDir, cfg.product)
  if (!db) throw new NotFoundError(`no job '${id}': no job has run in product '${cfg.product}'`)
  try {
    const ms = new MigrationStore(db)
    const job = ms.job(id) ?? getJob(db, id)
    if (!job) throw new NotFoundError(`no job '${id}'`, "see GET /api/jobs or 'rstore jobs'")
    if (job.state === 'done' || job.state === 'cancelled') throw new ConflictError(`job ${id} is already ${job.state}`)
    const migration = (MIGRATION_KINDS as readonly string[]).includes(job.kind)
    if (!migration && job.kind !== 'backfill') throw new ConflictError(`job ${id} is a ${job.kind} job: only migrate, rebalance and backfill jobs take pause/resume/cancel`)
    const running = migration ? (await MigrationLock.holder(store))?.job === id : jobAlive(job)
    if (!running) {
      throw new ConflictError(`job ${id} is not running (${job.state}): nothing to ${request} here`, `continue or cancel it in the foreground with 'rstore jobs ${request === 'pause' ? 'resume' : request} ${id}'`)
    }
    const control = request === 'resume' ? 'run' : request
    if (migration) ms.setControl(id, control)
    else setJobControl(db, id, control)
    return {job: id, requested: request}
  } finally {
    db.close()
  }
}
