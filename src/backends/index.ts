import {RedisStore} from './redis.js'
import {SqlStore, type SqlStoreOptions} from './sql/store.js'
import type {KeyStore} from './types.js'
import {parseStoreUrl, type StoreUrl} from './url.js'

export * from './types.js'
export * from './reply.js'
export {parseStoreUrl, parseHostPort, type StoreUrl} from './url.js'
export {RedisStore} from './redis.js'
export {SqlStore} from './sql/store.js'

/**
 * Opens a key store from a URL (mysql://user:pass@host:port/db, postgres://..., redis://host:port).
 * SQL stores check the tables' shape and create missing tables. Throws ValidationError for a bad URL
 * or a wrong-shaped table, UnreachableError when the server cannot be reached.
 */
export async function openStore(url: string | StoreUrl, opts: SqlStoreOptions = {}): Promise<KeyStore> {
  const u = typeof url === 'string' ? parseStoreUrl(url) : url
  if (u.kind === 'redis') return RedisStore.open(u)
  return SqlStore.open(u, opts)
}
