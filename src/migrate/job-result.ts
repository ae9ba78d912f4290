/** How a migration job run ends: its summary, or a stop that leaves it paused. */
import {RstoreError} from '../errors.js'
import type {MigrationKind} from './migration-store.js'

export interface JobSummary {
  job: string
  kind: MigrationKind | 'none'
  state: 'done' | 'cancelled' | 'nothing-to-do'
  resumed: boolean
  slotsTotal: number
  slotsDone: number
  slotsCancelled: number
  slotsSkipped: number
  keysMoved: number
  bytesMoved: number
  seconds: number
  keysPerSecond: number
  barriers: number
  barrierWaitMs: number
  /** Topology changes written and the time they took (ms). */
  changes: number
  changeMs: number
  /** Time spent in MIGRATE calls of small-key batches (the source is blocked meanwhile), ms. */
  migrateMs: number
  bigKeys: {slot: number; key: string; bytes: number; stallMs: number}[]
  /** Pending-set members of other slots skipped this run (written there by something not a proxy). */
  foreignMembers?: number
  message?: string
}

/** A stop asked for (SIGINT/SIGTERM): the job is left paused and resumable. */
export class StoppedError extends RstoreError {
  constructor(message: string) {
    super('ESTOPPED', message)
    this.name = 'StoppedError'
  }
}

export function emptySummary(kind: MigrationKind | 'none', started: number): JobSummary {
  return {
    job: '',
    kind,
    state: 'done',
    resumed: false,
    slotsTotal: 0,
    slotsDone: 0,
    slotsCancelled: 0,
    slotsSkipped: 0,
    keysMoved: 0,
    bytesMoved: 0,
    seconds: (Date.now() - started) / 1000,
    keysPerSecond: 0,
    barriers: 0,
    barrierWaitMs: 0,
    changes: 0,
    changeMs: 0,
    migrateMs: 0,
    bigKeys: [],
  }
}
