import {ValidationError} from '../errors.js'
import {adminSecurity} from '../resp/credentials.js'
import {DEFAULT_POOL, type PoolSettings, type StoreKind} from './types.js'

export interface StoreUrl {
  kind: StoreKind
  host: string
  port: number
  user?: string
  password?: string
  /** SQL database name, or the Redis db number as a string. */
  database?: string
  pool: PoolSettings
  /** Table name prefix for SQL stores (default `rstore_`). */
  prefix: string
  /** The URL without its password, for messages. */
  display: string
}

const DEFAULT_PORTS: Record<StoreKind, number> = {redis: 6379, mysql: 3306, postgres: 5432}
const SCHEMES: Record<string, StoreKind> = {'redis:': 'redis', 'mysql:': 'mysql', 'mariadb:': 'mysql', 'postgres:': 'postgres', 'postgresql:': 'postgres'}

/**
 * Parses a store URL: `mysql://user:pass@host:port/db`, `postgres://user:pass@host:port/db`,
 * `redis://host:port[/db]`. Query parameters: maxIdle, maxOpen, maxLifetime (seconds), prefix.
 */
export function parseStoreUrl(text: string): StoreUrl {
  let u: URL
  try {
    u = new URL(text)
  } catch {
    throw new ValidationError(`bad store URL '${text}': use mysql://user:pass@host:port/db, postgres://user:pass@host:port/db or redis://host:port`)
  }
  const kind = SCHEMES[u.protocol]
  if (!kind) {
    throw new ValidationError(`bad store URL '${text}': unknown scheme '${u.protocol.replace(/:$/, '')}' (use mysql, postgres or redis)`)
  }
  if (!u.hostname) throw new ValidationError(`bad store URL '${text}': no host`)
  const port = u.port ? Number(u.port) : DEFAULT_PORTS[kind]
  const database = decodeURIComponent(u.pathname.replace(/^\//, '')) || undefined
  if (kind !== 'redis' && !database) throw new ValidationError(`bad store URL '${text}': name the database (${kind}://user:pass@host:port/db)`)
  if (kind === 'redis' && database !== undefined && !/^\d+$/.test(database)) {
    throw new ValidationError(`bad store URL '${text}': the Redis db must be a number`)
  }
  const pool = {...DEFAULT_POOL}
  let prefix = 'rstore_'
  for (const [name, value] of u.searchParams) {
    if (name === 'maxIdle' || name === 'maxOpen' || name === 'maxLifetime') {
      const n = Number(value)
      if (!Number.isInteger(n) || n < (name === 'maxOpen' ? 1 : 0)) throw new ValidationError(`bad store URL '${text}': ${name} must be a whole number`)
      pool[name] = n
    } else if (name === 'prefix') {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(value)) throw new ValidationError(`bad store URL '${text}': prefix must be letters, digits and '_'`)
      prefix = value
    } else if (name === 'sslmode') {
      // accepted for compatibility with rstore's Go URLs; only disable is supported
    } else {
      throw new ValidationError(`bad store URL '${text}': unknown parameter '${name}' (known: maxIdle, maxOpen, maxLifetime, prefix)`)
    }
  }
  const display = `${kind === 'mysql' ? 'mysql' : kind}://${u.username ? `${decodeURIComponent(u.username)}@` : ''}${u.hostname}:${port}${database ? `/${database}` : ''}`
  // A Redis URL without a credential (e.g. `verify --from host:port` on a group server) logs in with
  // the admin credential from the environment (docs/security.md), as the mover does.
  const admin = kind === 'redis' && !u.username && !u.password ? adminSecurity() : {}
  return {
    kind,
    host: u.hostname,
    port,
    user: u.username ? decodeURIComponent(u.username) : admin.user,
    password: u.password ? decodeURIComponent(u.password) : admin.password,
    database,
    pool,
    prefix,
    display,
  }
}

/** Parses `host:port` (a Redis source). */
export function parseHostPort(text: string, what = 'address'): {host: string; port: number} {
  const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(text)
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) throw new ValidationError(`bad ${what} '${text}': use host:port`)
  return {host: m[1], port: Number(m[2])}
}
