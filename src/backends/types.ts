import type {Reply} from './reply.js'

export type KeyType = 'string' | 'hash' | 'list' | 'set' | 'zset'
export const KEY_TYPES: readonly KeyType[] = ['string', 'hash', 'list', 'set', 'zset']

/**
 * A whole key, as read from one store and written to another (dump/restore without Redis's
 * serialization format, so it crosses Redis and SQL).
 * - string: the bytes; hash: [field, value] pairs; set: members; list: items in order;
 *   zset: [member, score] pairs in order.
 * - pttl: remaining time to live in ms, or -1 for none.
 * - dump: Redis's DUMP payload, when read from Redis with {dump: true} (lets a Redis target RESTORE).
 */
export type KeySnapshot =
  | {type: 'string'; value: Buffer; pttl: number; dump?: Buffer}
  | {type: 'hash'; value: [Buffer, Buffer][]; pttl: number; dump?: Buffer}
  | {type: 'set'; value: Buffer[]; pttl: number; dump?: Buffer}
  | {type: 'list'; value: Buffer[]; pttl: number; dump?: Buffer}
  | {type: 'zset'; value: [Buffer, number][]; pttl: number; dump?: Buffer}

export interface ScanPage {
  /** '0' when the scan is complete. */
  cursor: string
  keys: Buffer[]
}

export type StoreKind = 'redis' | 'mysql' | 'postgres'

/** Pool settings of a db unit (rstore schema: MaxIdle, MaxOpen, MaxLifetime in seconds). */
export interface PoolSettings {
  maxIdle: number
  maxOpen: number
  maxLifetime: number
}

export const DEFAULT_POOL: PoolSettings = {maxIdle: 10, maxOpen: 10, maxLifetime: 60}

/**
 * One place that holds Redis data: a Redis server, or a MySQL/MariaDB or PostgreSQL database with
 * Redis types mapped to tables. Every command keeps Redis's semantics and reply values; each one is
 * one statement or one transaction.
 */
export interface KeyStore {
  readonly kind: StoreKind
  /** A printable name (URL without password). */
  readonly name: string
  /** Runs one command given as raw argv (argv[0] is the command name). Redis errors come back as error replies. */
  execute(argv: Buffer[]): Promise<Reply>
  /** execute() with strings/numbers converted to Buffers. */
  command(...args: (string | Buffer | number)[]): Promise<Reply>
  /** The whole key with its TTL, or null when it does not exist (or has expired). */
  readKey(key: Buffer, opts?: {dump?: boolean}): Promise<KeySnapshot | null>
  /** readKey for many keys (pipelined / batched); same order as keys. */
  readKeys(keys: Buffer[], opts?: {dump?: boolean}): Promise<(KeySnapshot | null)[]>
  /** Whether each key exists (and has not expired); same order as keys. */
  existing(keys: Buffer[]): Promise<boolean[]>
  /** Writes the key only if it does not exist (atomically); true when written. */
  writeKeyIfAbsent(key: Buffer, snap: KeySnapshot): Promise<boolean>
  /** writeKeyIfAbsent for many keys (batched); same order as entries. */
  writeKeysIfAbsent(entries: {key: Buffer; snap: KeySnapshot}[]): Promise<boolean[]>
  /** Replaces the key with the snapshot (atomically). */
  writeKey(key: Buffer, snap: KeySnapshot): Promise<void>
  /**
   * Deletes the key only if it still holds snap's value, as written by writeKey(IfAbsent) (atomically;
   * the TTL aside); true when deleted. Undoes a copy whose source key was deleted meanwhile.
   */
  deleteIfSame(key: Buffer, snap: KeySnapshot): Promise<boolean>
  /** One SCAN step: cursor '0' starts; returns '0' when done. match is a Redis glob. */
  scan(cursor: string, match?: string, count?: number): Promise<ScanPage>
  /** Number of keys (DBSIZE; for SQL the live rows of the key table). */
  dbsize(): Promise<number>
  /** Closes connections and timers. */
  close(): Promise<void>
}

/** Remaining TTL of an absolute expiry in ms (epoch), Redis-style: -1 when none. */
export function pttlOf(expireAt: number | null, now: number): number {
  if (expireAt === null) return -1
  return Math.max(0, expireAt - now)
}
