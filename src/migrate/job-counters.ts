/** A migration job's counters for this run, shared by the mover and its key movers, read by the summary. */
export class JobCounters {
  /** Barriers passed and the time spent waiting in them (ms). */
  barriers = 0
  barrierWaitMs = 0
  /** Topology changes written and the time they took (ms). */
  changes = 0
  changeMs = 0
  /** Time in MIGRATE calls and held script batches (the source is blocked meanwhile), ms. */
  migrateMs = 0
  keysThisRun = 0
  bytesThisRun = 0
  /** Pending-set members skipped because their slot is not the set's (see slotKeys). */
  foreignMembers = 0
  /** Keys a held move found but could not dump (then the slot is checked after its move); per slot. */
  heldUndumped = 0
  /** Holds of the slot next in line released by a pause, a stop or an error. */
  preholdReleases = 0

  /** Keys and bytes moved to the target. */
  moved(keys: number, bytes: number): void {
    this.keysThisRun += keys
    this.bytesThisRun += bytes
  }
}
