/**
 * Failpoints: named places between the mover's steps where a test can have the process SIGKILLed,
 * to check that a resume from exactly there loses nothing (random kills reach the narrow windows
 * only by luck). Off unless RSTORE_FAILPOINT=<name>:<hit> is set: the <hit>-th time the mover passes
 * <name> it kills itself. Names are listed in FAILPOINTS.
 */
export const FAILPOINTS = [
  /** The job's slots were marked pending; the barrier and the scan have not run. */
  'after-mark',
  /** A chunk of the scan (keys and cursor) was recorded. */
  'scan-chunk',
  /** The change that made a slot migrating is written; the checkpoint does not know yet. */
  'after-migrating-change',
  /** A held batch is restored on the target and still on the source (not unlinked). */
  'held-after-restore',
  /** A held chunk is restored and unlinked; its progress is not recorded. */
  'held-after-unlink',
  /** A released slot is served by the proxies again (pending cleared); no key of it moved since. */
  'after-release',
  /** A MIGRATE batch moved; its progress is not recorded. */
  'online-after-migrate',
  /** The change that put a moved slot online at its target is written; the slot is not recorded done. */
  'after-online-change',
  /** A slot is recorded done. */
  'after-done',
] as const

export type Failpoint = (typeof FAILPOINTS)[number]

const [armedName, armedHit] = (process.env.RSTORE_FAILPOINT ?? '').split(':')
const hitAt = Number(armedHit ?? 1) || 1
let hits = 0

/** Kills the process here if RSTORE_FAILPOINT names this point and this is its hit. */
export function failpoint(name: Failpoint): void {
  if (name !== armedName) return
  if (++hits >= hitAt) process.kill(process.pid, 'SIGKILL')
}
