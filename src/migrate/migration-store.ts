/**
 * The migration job's checkpoint tables, in the product's checkpoint file next to the shared `jobs`
 * table (src/migrate/checkpoints.ts). Every step's completion is written in one transaction with the
 * job's counters: slot states, the scan cursor of each source group with the keys it bucketed, the
 * position in a slot's bucket and pending set, big keys met.
 */
import {hostname} from 'node:os'
import {
  createJob,
  findJobs,
  getJob,
  UNFINISHED,
  updateJob,
  type CheckpointDb,
  type Job,
  type JobState,
} from './checkpoints.js'
import type {PackedRow} from './scan-buckets.js'

export const MIGRATION_KINDS = ['migrate', 'rebalance'] as const
export type MigrationKind = (typeof MIGRATION_KINDS)[number]

/** The job's phase: mark its slots pending, scan the sources, move slot by slot. */
export type MigrationPhase = 'pending' | 'scan' | 'move' | 'finished'
export type Control = 'run' | 'pause' | 'cancel'
export type SlotRowState = 'queued' | 'migrating' | 'done' | 'cancelled'
/** Inside a migrating slot: its bucket, then its pending set, then the check that none is left. */
export type SlotStep = 'bucket' | 'pending' | 'verify'

export interface MigrationProgress {
  host: string
  pid: number
  phase: MigrationPhase
  slotsTotal: number
  slotsDone: number
  slotsCancelled: number
  keysMoved: number
  keysTotal: number
  bigKeys: number
  currentSlot: number
  error?: string
  [k: string]: unknown
}

export interface SlotRow {
  seq: number
  slot: number
  source: number
  target: number
  state: SlotRowState
  step: SlotStep
  /** The last bucket chunk moved (-1: none yet). */
  bucketSeq: number
  pendingCursor: string
  bucketKeys: number
  keysMoved: number
  bytesMoved: number
  epoch: number | null
}

export interface BigKey {
  slot: number
  key: Buffer
  bytes: number
  stallMs: number
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS migration_jobs (
  n INTEGER PRIMARY KEY AUTOINCREMENT,
  job TEXT NOT NULL UNIQUE,
  phase TEXT NOT NULL,
  control TEXT NOT NULL DEFAULT 'run',
  options TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS migration_slots (
  n INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  slot INTEGER NOT NULL,
  source INTEGER NOT NULL,
  target INTEGER NOT NULL,
  state TEXT NOT NULL,
  step TEXT NOT NULL DEFAULT 'bucket',
  bucket_seq INTEGER NOT NULL DEFAULT -1,
  pending_cursor TEXT NOT NULL DEFAULT '0',
  bucket_keys INTEGER NOT NULL DEFAULT 0,
  keys_moved INTEGER NOT NULL DEFAULT 0,
  bytes_moved INTEGER NOT NULL DEFAULT 0,
  epoch INTEGER,
  started_at INTEGER,
  done_at INTEGER,
  PRIMARY KEY (n, slot)
);
CREATE TABLE IF NOT EXISTS migration_scans (
  n INTEGER NOT NULL,
  grp INTEGER NOT NULL,
  cursor TEXT NOT NULL DEFAULT '0',
  started INTEGER NOT NULL DEFAULT 0,
  done INTEGER NOT NULL DEFAULT 0,
  seen INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (n, grp)
);
CREATE TABLE IF NOT EXISTS migration_buckets (
  n INTEGER NOT NULL,
  slot INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  count INTEGER NOT NULL,
  keys BLOB NOT NULL,
  PRIMARY KEY (n, slot, seq)
);
CREATE TABLE IF NOT EXISTS migration_big_keys (
  n INTEGER NOT NULL,
  slot INTEGER NOT NULL,
  key BLOB NOT NULL,
  bytes INTEGER NOT NULL,
  stall_ms REAL NOT NULL,
  PRIMARY KEY (n, key)
);
`

interface SlotDbRow {
  seq: number
  slot: number
  source: number
  target: number
  state: SlotRowState
  step: SlotStep
  bucket_seq: number
  pending_cursor: string
  bucket_keys: number
  keys_moved: number
  bytes_moved: number
  epoch: number | null
}

function toSlotRow(r: SlotDbRow): SlotRow {
  return {
    seq: r.seq,
    slot: r.slot,
    source: r.source,
    target: r.target,
    state: r.state,
    step: r.step,
    bucketSeq: r.bucket_seq,
    pendingCursor: r.pending_cursor,
    bucketKeys: r.bucket_keys,
    keysMoved: r.keys_moved,
    bytesMoved: r.bytes_moved,
    epoch: r.epoch,
  }
}

export interface PlannedSlot {
  slot: number
  source: number
  target: number
  /** Already migrating to target when the job was created (an interrupted slot taken over). */
  migrating?: boolean
}

/** A migration job's view of the checkpoint file. */
export class MigrationStore {
  private readonly st

  constructor(readonly db: CheckpointDb) {
    db.exec(SCHEMA)
    this.st = {
      jobN: db.prepare<[string], {n: number; phase: MigrationPhase; control: Control; options: string}>('SELECT n, phase, control, options FROM migration_jobs WHERE job = ?'),
      slots: db.prepare<[number], SlotDbRow>('SELECT * FROM migration_slots WHERE n = ? ORDER BY seq'),
      slot: db.prepare<[number, number], SlotDbRow>('SELECT * FROM migration_slots WHERE n = ? AND slot = ?'),
      setControl: db.prepare<[Control, string]>('UPDATE migration_jobs SET control = ? WHERE job = ?'),
      setPhase: db.prepare<[MigrationPhase, number]>('UPDATE migration_jobs SET phase = ? WHERE n = ?'),
      scan: db.prepare<[number, number], {cursor: string; started: number; done: number; seen: number}>('SELECT cursor, started, done, seen FROM migration_scans WHERE n = ? AND grp = ?'),
      scanUpsert: db.prepare<[number, number, string, number, number]>(
        `INSERT INTO migration_scans (n, grp, cursor, started, done, seen) VALUES (?, ?, ?, 1, ?, ?)
         ON CONFLICT (n, grp) DO UPDATE SET cursor = excluded.cursor, started = 1, done = excluded.done, seen = migration_scans.seen + excluded.seen`,
      ),
      scanReset: db.prepare<[number, number]>('DELETE FROM migration_scans WHERE n = ? AND grp = ?'),
      insertChunk: db.prepare<[number, number, number, number, Buffer]>('INSERT OR REPLACE INTO migration_buckets (n, slot, seq, count, keys) VALUES (?, ?, ?, ?, ?)'),
      maxSeq: db.prepare<[number], {m: number | null}>('SELECT MAX(seq) AS m FROM migration_buckets WHERE n = ?'),
      chunks: db.prepare<[number, number, number, number], {seq: number; count: number; keys: Buffer}>(
        'SELECT seq, count, keys FROM migration_buckets WHERE n = ? AND slot = ? AND seq > ? ORDER BY seq LIMIT ?',
      ),
      bucketCounts: db.prepare<[number], {slot: number; c: number}>('SELECT slot, SUM(count) AS c FROM migration_buckets WHERE n = ? GROUP BY slot'),
      setBucketKeys: db.prepare<[number, number, number]>('UPDATE migration_slots SET bucket_keys = ? WHERE n = ? AND slot = ?'),
      deleteBucket: db.prepare<[number, number]>('DELETE FROM migration_buckets WHERE n = ? AND slot = ?'),
      slotProgress: db.prepare<[SlotStep, number, string, number, number, number, number]>(
        'UPDATE migration_slots SET step = ?, bucket_seq = ?, pending_cursor = ?, keys_moved = keys_moved + ?, bytes_moved = bytes_moved + ? WHERE n = ? AND slot = ?',
      ),
      slotState: db.prepare<[SlotRowState, number | null, number, number, number]>(
        'UPDATE migration_slots SET state = ?, epoch = COALESCE(?, epoch), started_at = COALESCE(started_at, ?) WHERE n = ? AND slot = ?',
      ),
      slotDone: db.prepare<[SlotRowState, number, number, number]>('UPDATE migration_slots SET state = ?, done_at = ? WHERE n = ? AND slot = ?'),
      bigKey: db.prepare<[number, number, Buffer, number, number]>(
        'INSERT OR REPLACE INTO migration_big_keys (n, slot, key, bytes, stall_ms) VALUES (?, ?, ?, ?, ?)',
      ),
      bigKeys: db.prepare<[number], {slot: number; key: Buffer; bytes: number; stall_ms: number}>(
        'SELECT slot, key, bytes, stall_ms FROM migration_big_keys WHERE n = ? ORDER BY bytes DESC',
      ),
      insertSlot: db.prepare<[number, number, number, number, number, SlotRowState]>(
        'INSERT INTO migration_slots (n, seq, slot, source, target, state) VALUES (?, ?, ?, ?, ?, ?)',
      ),
    }
  }

  /** Unfinished migrate/rebalance jobs, newest first. */
  unfinished(): Job<MigrationProgress>[] {
    return MIGRATION_KINDS.flatMap((k) => findJobs<MigrationProgress>(this.db, k, {states: UNFINISHED})).sort((a, b) => b.createdAt - a.createdAt)
  }

  job(id: string): Job<MigrationProgress> | undefined {
    return getJob<MigrationProgress>(this.db, id)
  }

  /** Creates the job, its slot rows (in plan order) and its control row, in one transaction. */
  create(kind: MigrationKind, args: Record<string, unknown>, plan: PlannedSlot[], options: Record<string, unknown>): Job<MigrationProgress> {
    return this.db.transaction(() => {
      const progress: MigrationProgress = {
        host: hostname(),
        pid: process.pid,
        phase: 'pending',
        slotsTotal: plan.length,
        slotsDone: 0,
        slotsCancelled: 0,
        keysMoved: 0,
        keysTotal: 0,
        bigKeys: 0,
        currentSlot: -1,
      }
      const job = createJob<MigrationProgress>(this.db, kind, args, progress)
      const n = Number(
        this.db.prepare('INSERT INTO migration_jobs (job, phase, options) VALUES (?, ?, ?)').run(job.id, 'pending', JSON.stringify(options)).lastInsertRowid,
      )
      plan.forEach((p, i) => this.st.insertSlot.run(n, i, p.slot, p.source, p.target, p.migrating ? 'migrating' : 'queued'))
      return job
    })()
  }

  n(job: string): number {
    const r = this.st.jobN.get(job)
    if (!r) throw new Error(`job ${job} has no migration rows`)
    return r.n
  }

  phase(job: string): MigrationPhase {
    return this.st.jobN.get(job)?.phase ?? 'pending'
  }

  control(job: string): Control {
    return this.st.jobN.get(job)?.control ?? 'run'
  }

  setControl(job: string, control: Control): void {
    this.st.setControl.run(control, job)
  }

  options(job: string): Record<string, unknown> {
    const r = this.st.jobN.get(job)
    return r ? (JSON.parse(r.options) as Record<string, unknown>) : {}
  }

  slots(job: string): SlotRow[] {
    return this.st.slots.all(this.n(job)).map(toSlotRow)
  }

  slot(job: string, slot: number): SlotRow {
    return toSlotRow(this.st.slot.get(this.n(job), slot)!)
  }

  /** Updates the job's progress JSON (and state) in the current transaction. */
  progress(job: Job<MigrationProgress>, patch: Partial<MigrationProgress>, state?: JobState): void {
    Object.assign(job.progress, patch)
    if (state) job.state = state
    updateJob(this.db, job.id, {progress: job.progress, state})
  }

  setPhase(job: Job<MigrationProgress>, phase: MigrationPhase): void {
    this.db.transaction(() => {
      this.st.setPhase.run(phase, this.n(job.id))
      this.progress(job, {phase})
    })()
  }

  scanState(job: string, group: number): {cursor: string; started: boolean; done: boolean; seen: number} {
    const r = this.st.scan.get(this.n(job), group)
    return r ? {cursor: r.cursor, started: !!r.started, done: !!r.done, seen: r.seen} : {cursor: '0', started: false, done: false, seen: 0}
  }

  resetScan(job: string, group: number): void {
    this.st.scanReset.run(this.n(job), group)
  }

  /**
   * SCAN pages of a source: their keys, one packed chunk per slot, and the cursor after the last page,
   * one transaction. (A resumed scan repeats the pages after the last chunk; a key met twice is moved
   * once: the second time it is no longer on the source.)
   */
  recordScanChunk(job: string, group: number, cursor: string, done: boolean, seen: number, perSlot: Map<number, PackedRow[]>): void {
    const n = this.n(job)
    this.db.transaction(() => {
      const seq = (this.st.maxSeq.get(n)?.m ?? -1) + 1
      for (const [slot, rows] of perSlot) rows.forEach((r, i) => this.st.insertChunk.run(n, slot, seq + i, r.count, r.blob))
      this.st.scanUpsert.run(n, group, cursor, done ? 1 : 0, seen)
    })()
  }

  /** After the scan: each slot's bucket size; returns the total. */
  countBuckets(job: Job<MigrationProgress>): number {
    const n = this.n(job.id)
    let total = 0
    this.db.transaction(() => {
      for (const {slot, c} of this.st.bucketCounts.all(n)) {
        this.st.setBucketKeys.run(c, n, slot)
        total += c
      }
    })()
    return total
  }

  /** The slot's bucket chunks after seq, in order, up to about minKeys keys (at least one chunk). */
  bucketChunks(job: string, slot: number, afterSeq: number, minKeys: number): {seq: number; keys: Buffer[]} {
    const n = this.n(job)
    const keys: Buffer[] = []
    let seq = afterSeq
    while (keys.length < minKeys) {
      const rows = this.st.chunks.all(n, slot, seq, 16)
      if (!rows.length) break
      for (const r of rows) {
        keys.push(...unpackKeys(r.keys))
        seq = r.seq
        if (keys.length >= minKeys) break
      }
    }
    return {seq, keys}
  }

  /** A batch of a slot moved: its position and counters with the job's counters, one transaction. */
  recordBatch(job: Job<MigrationProgress>, row: SlotRow, moved: number, bytes: number, bigKeys: BigKey[]): void {
    const n = this.n(job.id)
    this.db.transaction(() => {
      this.st.slotProgress.run(row.step, row.bucketSeq, row.pendingCursor, moved, bytes, n, row.slot)
      for (const b of bigKeys) this.st.bigKey.run(n, b.slot, b.key, b.bytes, b.stallMs)
      this.progress(job, {keysMoved: job.progress.keysMoved + moved, bigKeys: job.progress.bigKeys + bigKeys.length, currentSlot: row.slot})
    })()
    row.keysMoved += moved
    row.bytesMoved += bytes
  }

  /** The slot was set migrating at epoch (topology written). */
  recordMigrating(job: Job<MigrationProgress>, slot: number, epoch: number): void {
    const n = this.n(job.id)
    this.db.transaction(() => {
      this.st.slotState.run('migrating', epoch, Date.now(), n, slot)
      this.progress(job, {currentSlot: slot})
    })()
  }

  /** The slot is online at its target and acknowledged: done, its bucket dropped, counters. */
  recordDone(job: Job<MigrationProgress>, slot: number): void {
    const n = this.n(job.id)
    this.db.transaction(() => {
      this.st.slotDone.run('done', Date.now(), n, slot)
      this.st.deleteBucket.run(n, slot)
      this.progress(job, {slotsDone: job.progress.slotsDone + 1})
    })()
  }

  /** Queued slots left out by a cancel. */
  recordCancelled(job: Job<MigrationProgress>, slots: number[]): void {
    const n = this.n(job.id)
    this.db.transaction(() => {
      for (const s of slots) {
        this.st.slotDone.run('cancelled', Date.now(), n, s)
        this.st.deleteBucket.run(n, s)
      }
      this.progress(job, {slotsCancelled: job.progress.slotsCancelled + slots.length})
    })()
  }

  bigKeys(job: string): BigKey[] {
    return this.st.bigKeys.all(this.n(job)).map((r) => ({slot: r.slot, key: r.key, bytes: r.bytes, stallMs: r.stall_ms}))
  }

  /** Drops the job's leftover bucket rows (done or cancelled). */
  finish(job: Job<MigrationProgress>, state: 'done' | 'cancelled'): void {
    const n = this.n(job.id)
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM migration_buckets WHERE n = ?').run(n)
      this.st.setPhase.run('finished', n)
      this.st.setControl.run('run', job.id)
      this.progress(job, {phase: 'finished', currentSlot: -1, error: undefined}, state)
    })()
  }
}

/** A bucket row's keys (packed by ScanBuckets: each a 4-byte big-endian length and its bytes). */
export function unpackKeys(buf: Buffer): Buffer[] {
  const out: Buffer[] = []
  let o = 0
  while (o + 4 <= buf.length) {
    const len = buf.readUInt32BE(o)
    out.push(Buffer.from(buf.subarray(o + 4, o + 4 + len)))
    o += 4 + len
  }
  return out
}
