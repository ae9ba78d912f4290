/**
 * The checkpoint store (docs/architecture.md, "Jobs and checkpoints"): one SQLite file per product, `<checkpointDir>/<product>.db`,
 * in WAL mode. The `jobs` table is shared by every kind of job (backfill, migrate, rebalance, cutover
 * copy); a kind keeps its own detail in its own tables in the same file, and records each step's
 * completion in the same transaction as its job's progress (`db.transaction(...)`).
 */
import {randomBytes} from 'node:crypto'
import {existsSync, mkdirSync} from 'node:fs'
import {join} from 'node:path'
import Database from 'better-sqlite3'
import {ValidationError} from '../errors.js'

export type JobState = 'running' | 'paused' | 'done' | 'failed' | 'cancelled'
export const UNFINISHED: readonly JobState[] = ['running', 'paused', 'failed']

export interface Job<P = Record<string, unknown>> {
  id: string
  kind: string
  args: Record<string, unknown>
  state: JobState
  createdAt: number
  updatedAt: number
  progress: P
}

export type CheckpointDb = Database.Database

/** Opens (creating) the product's checkpoint file. */
/** The product's checkpoint file if it exists (reading it never creates one), else undefined. */
export function openExistingCheckpoints(dir: string, product: string): CheckpointDb | undefined {
  return existsSync(join(dir, `${product}.db`)) ? openCheckpoints(dir, product) : undefined
}

export function openCheckpoints(dir: string, product: string): CheckpointDb {
  if (!/^[A-Za-z0-9_.-]+$/.test(product)) throw new ValidationError(`invalid product '${product}'`)
  try {
    mkdirSync(dir, {recursive: true})
  } catch (e) {
    throw new ValidationError(`cannot create checkpoint dir '${dir}': ${(e as Error).message}`)
  }
  const db = new Database(join(dir, `${product}.db`))
  db.pragma('journal_mode = WAL')
  db.pragma('busy_timeout = 10000')
  db.pragma('synchronous = NORMAL')
  db.exec(`CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    args TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('running','paused','done','failed','cancelled')),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    progress TEXT NOT NULL DEFAULT '{}'
  );
  CREATE INDEX IF NOT EXISTS jobs_kind_state ON jobs (kind, state);
  CREATE TABLE IF NOT EXISTS job_control (
    job_id TEXT PRIMARY KEY,
    control TEXT NOT NULL CHECK (control IN ('run','pause','cancel'))
  );`)
  return db
}

/** What another process asked a running job to do (`rstore jobs pause|resume|cancel`); read between batches. */
export type JobControl = 'run' | 'pause' | 'cancel'

/** The control request of a job of any kind kept in the shared jobs table (migrations keep theirs in migration_jobs). */
export function jobControl(db: CheckpointDb, id: string): JobControl {
  const row = db.prepare('SELECT control FROM job_control WHERE job_id = ?').get(id) as {control: JobControl} | undefined
  return row?.control ?? 'run'
}

export function setJobControl(db: CheckpointDb, id: string, control: JobControl): void {
  db.prepare('INSERT INTO job_control (job_id, control) VALUES (?, ?) ON CONFLICT (job_id) DO UPDATE SET control = excluded.control').run(id, control)
}

/** JSON with sorted keys, so equal arguments give equal text (a job is found by its arguments). */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b))) : v,
  )
}

interface JobRow {
  id: string
  kind: string
  args: string
  state: JobState
  created_at: number
  updated_at: number
  progress: string
}

function toJob<P>(r: JobRow): Job<P> {
  return {id: r.id, kind: r.kind, args: JSON.parse(r.args), state: r.state, createdAt: r.created_at, updatedAt: r.updated_at, progress: JSON.parse(r.progress)}
}

export function createJob<P>(db: CheckpointDb, kind: string, args: Record<string, unknown>, progress: P, state: JobState = 'running'): Job<P> {
  const now = Date.now()
  const id = `${kind}-${now.toString(36)}-${randomBytes(3).toString('hex')}`
  db.prepare('INSERT INTO jobs (id, kind, args, state, created_at, updated_at, progress) VALUES (?, ?, ?, ?, ?, ?, ?)').run(
    id, kind, canonicalJson(args), state, now, now, JSON.stringify(progress),
  )
  return {id, kind, args, state, createdAt: now, updatedAt: now, progress}
}

export function getJob<P>(db: CheckpointDb, id: string): Job<P> | undefined {
  const r = db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as JobRow | undefined
  return r ? toJob<P>(r) : undefined
}

/** Jobs of a kind, newest first; optionally only those with exactly these arguments / in these states. */
export function findJobs<P>(db: CheckpointDb, kind: string, opts: {args?: Record<string, unknown>; states?: readonly JobState[]} = {}): Job<P>[] {
  const conds = ['kind = ?']
  const params: unknown[] = [kind]
  if (opts.args) {
    conds.push('args = ?')
    params.push(canonicalJson(opts.args))
  }
  if (opts.states) {
    conds.push(`state IN (${opts.states.map(() => '?').join(',')})`)
    params.push(...opts.states)
  }
  const rows = db.prepare(`SELECT * FROM jobs WHERE ${conds.join(' AND ')} ORDER BY created_at DESC, id DESC`).all(...params) as JobRow[]
  return rows.map((r) => toJob<P>(r))
}

/** The newest unfinished job of a kind with exactly these arguments (what a re-run resumes). */
export function findUnfinishedJob<P>(db: CheckpointDb, kind: string, args: Record<string, unknown>): Job<P> | undefined {
  return findJobs<P>(db, kind, {args, states: UNFINISHED})[0]
}

export function updateJob<P>(db: CheckpointDb, id: string, patch: {state?: JobState; progress?: P}): void {
  const sets = ['updated_at = ?']
  const params: unknown[] = [Date.now()]
  if (patch.state) {
    sets.push('state = ?')
    params.push(patch.state)
  }
  if (patch.progress !== undefined) {
    sets.push('progress = ?')
    params.push(JSON.stringify(patch.progress))
  }
  db.prepare(`UPDATE jobs SET ${sets.join(', ')} WHERE id = ?`).run(...params, id)
}

export function listJobs(db: CheckpointDb): Job[] {
  return (db.prepare('SELECT * FROM jobs ORDER BY created_at DESC, id DESC').all() as JobRow[]).map((r) => toJob(r))
}

/** Whether a process id is alive on this host (a 'running' job whose process died is resumable). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}
