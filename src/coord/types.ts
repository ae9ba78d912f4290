/**
 * The coordinator: a small strongly consistent key/value store with transactions, ordered watches and
 * leases. Two implementations share these exact semantics: etcd (multi-host) and embedded (one SQLite
 * file shared by the processes of one machine). Keys are full paths (callers add `/rstore/<product>/`).
 */

export interface KeyValue {
  key: string
  value: string
  /** Revision of the transaction that created this key (it survives later puts). */
  createRevision: number
  /** Revision of the transaction that last wrote this key. */
  modRevision: number
  /** Lease the key is bound to, if any (the key is deleted when the lease expires). */
  lease?: string
}

/** A condition checked inside a transaction. */
export type Compare =
  /** modRevision equals the given number; 0 means "the key does not exist". */
  | {key: string; modRevision: number}
  /** The key exists and its value equals the given string. */
  | {key: string; value: string}

export type Op =
  | {type: 'put'; key: string; value: string; lease?: string}
  | {type: 'delete'; key: string}
  /** Deletes every key starting with prefix. */
  | {type: 'deletePrefix'; prefix: string}

export interface TxnResult {
  succeeded: boolean
  /** The store's revision after the transaction (unchanged when it did not succeed). */
  revision: number
}

export interface WatchEvent {
  type: 'put' | 'delete'
  key: string
  /** The new value for put; the empty string for delete. */
  value: string
  revision: number
}

export interface Watcher {
  close(): Promise<void>
}

export interface Lease {
  readonly id: string
  readonly ttlSeconds: number
  /** Calls back once when the lease is found expired or revoked (keep-alive failed). */
  onLost(cb: () => void): void
  /** Stops the keep-alive and deletes the lease and every key bound to it. */
  revoke(): Promise<void>
  /** Stops the keep-alive without revoking: the lease expires after its TTL (for tests of expiry). */
  release(): void
}

export interface Coordinator {
  readonly kind: 'embedded' | 'etcd'
  get(key: string): Promise<KeyValue | null>
  /** Every key starting with prefix, sorted by key. */
  list(prefix: string): Promise<KeyValue[]>
  /** list() and the store's revision it was read at (one snapshot): a watch from there misses nothing. */
  listWithRevision(prefix: string): Promise<{kvs: KeyValue[]; revision: number}>
  /** All compares hold -> all ops applied atomically at one new revision; else nothing changes. */
  txn(compares: Compare[], ops: Op[]): Promise<TxnResult>
  /** The current revision of the whole store. */
  revision(): Promise<number>
  /**
   * Calls onEvent for each change under prefix with revision > afterRevision, in revision order.
   * onError is called if the watch cannot continue (e.g. the revision was compacted).
   */
  watch(
    prefix: string,
    afterRevision: number,
    onEvent: (ev: WatchEvent) => void,
    onError?: (err: Error) => void,
  ): Promise<Watcher>
  /** A lease with a TTL, kept alive in the background until revoked, released or closed. */
  grantLease(ttlSeconds: number): Promise<Lease>
  close(): Promise<void>
}

/** A put that only succeeds if the key does not exist yet. */
export function createOnly(key: string): Compare {
  return {key, modRevision: 0}
}
