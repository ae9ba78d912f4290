/**
 * Helpers shared by both coordinator implementations: byte-wise key ranges (etcd orders keys by their
 * bytes; the embedded store keeps keys as BLOBs so SQLite orders them the same way), txn validation
 * that mirrors etcd's own rules, and the coordinator's error types.
 */
import {ConflictError, RstoreError, ValidationError} from '../errors.js'
import type {Op} from './types.js'

/** The key as the bytes both stores compare (UTF-8). */
export function keyBytes(key: string): Buffer {
  return Buffer.from(key, 'utf8')
}

/**
 * The exclusive end of the key range "every key starting with prefix": the prefix with its last byte
 * that is not 0xff incremented (trailing 0xff bytes dropped). null means "no end" (empty prefix or a
 * prefix of only 0xff bytes): every key >= the prefix.
 */
export function prefixEnd(prefix: Buffer): Buffer | null {
  const end = Buffer.from(prefix)
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i]++
      return end.subarray(0, i + 1)
    }
  }
  return null
}

/** True when key (bytes) starts with prefix (bytes). */
export function hasPrefix(key: Buffer, prefix: Buffer): boolean {
  return key.length >= prefix.length && key.subarray(0, prefix.length).equals(prefix)
}

/**
 * Rejects what etcd rejects, so that code that works on the embedded store also works on etcd:
 * the same key put twice in one txn, or a put of a key that a delete/deletePrefix of the same txn
 * also covers ("duplicate key given in txn request"). Overlapping deletes are fine.
 */
export function validateOps(ops: Op[]): void {
  const puts = new Set<string>()
  const delKeys = new Set<string>()
  const delPrefixes: string[] = []
  for (const op of ops) {
    if (op.type === 'put') {
      if (typeof op.key !== 'string' || op.key === '') throw new ValidationError('coordinator txn: put needs a non-empty key')
      if (typeof op.value !== 'string') throw new ValidationError(`coordinator txn: put '${op.key}' needs a string value`)
      if (puts.has(op.key)) throw new ValidationError(`coordinator txn: key '${op.key}' is put twice in one transaction`)
      puts.add(op.key)
    } else if (op.type === 'delete') {
      if (typeof op.key !== 'string' || op.key === '') throw new ValidationError('coordinator txn: delete needs a non-empty key')
      delKeys.add(op.key)
    } else if (op.type === 'deletePrefix') {
      if (typeof op.prefix !== 'string') throw new ValidationError('coordinator txn: deletePrefix needs a prefix')
      delPrefixes.push(op.prefix)
    } else {
      throw new ValidationError(`coordinator txn: unknown op type '${(op as {type: string}).type}'`)
    }
  }
  for (const key of puts) {
    if (delKeys.has(key) || delPrefixes.some((p) => key.startsWith(p))) {
      throw new ValidationError(`coordinator txn: key '${key}' is both put and deleted in one transaction`)
    }
  }
}

/** A put named a lease that does not exist (any more): it expired or was revoked. */
export class LeaseNotFoundError extends ConflictError {
  constructor(readonly leaseId: string) {
    super(`coordinator lease ${leaseId} not found: it expired or was revoked`)
    this.name = 'LeaseNotFoundError'
  }
}

/** A watch asked for revisions that are no longer kept (compacted). */
export class CompactedError extends RstoreError {
  constructor(
    readonly requestedRevision: number,
    /** The newest revision dropped from history, -1 when the store did not say. */
    readonly compactRevision: number,
    detail?: string,
  ) {
    super(
      'ECOMPACTED',
      `coordinator watch from revision ${requestedRevision} is impossible: history ` +
        (compactRevision >= 0 ? `up to revision ${compactRevision} ` : '') +
        `was compacted${detail ? ` (${detail})` : ''}; re-read the state and watch again`,
    )
    this.name = 'CompactedError'
  }
}

/** An operation on a coordinator after close(). */
export class CoordinatorClosedError extends RstoreError {
  constructor(kind: string) {
    super('ECLOSED', `the ${kind} coordinator is closed`)
    this.name = 'CoordinatorClosedError'
  }
}

/** Calls the watch's error handler, or throws asynchronously when there is none (never silently). */
export function reportWatchError(err: Error, onError?: (err: Error) => void): void {
  if (onError) {
    try {
      onError(err)
    } catch (e) {
      setImmediate(() => {
        throw e
      })
    }
  } else {
    setImmediate(() => {
      throw err
    })
  }
}
