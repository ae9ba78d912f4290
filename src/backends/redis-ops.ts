import {Redis} from 'ioredis'
import {RstoreError, UnreachableError} from '../errors.js'
import {adminSecurity, ioredisSecurity, type BackendSecurity} from '../resp/credentials.js'
import {unsupportedCommands} from '../resp/commands.js'
import {isReservedKeyAt} from '../topology/internal-keys.js'
import {parseAddr} from '../topology/model.js'
import {slotOf} from '../topology/slots.js'

/** What a server says about its replication (ROLE and INFO replication). */
export interface ReplicationState {
  role: 'master' | 'slave'
  /** For a slave: the master it replicates from, host:port. */
  masterAddr?: string
  /** For a slave: 'connected' once the link is up. */
  linkState?: string
  /** master: master_repl_offset; slave: slave_repl_offset (the bytes of the stream it has applied). */
  offset: number
  /** For a slave: replica-priority (0 = never promote; lower first). */
  priority?: number
  /** For a slave whose link is down: seconds since it went down (0 while up). */
  linkDownSec?: number
}

/**
 * The Redis commands the admin operations send to servers. An interface so unit tests can stub it; the
 * default implementation uses ioredis with short timeouts and one connection per call.
 */
export interface RedisOps {
  /** Resolves if the server answers PING, else throws UnreachableError naming the address. */
  ping(addr: string): Promise<void>
  replication(addr: string): Promise<ReplicationState>
  /** `REPLICAOF host port`, or `REPLICAOF NO ONE` when master is null. */
  replicaOf(addr: string, master: string | null): Promise<void>
  /** `CLIENT PAUSE ms WRITE`: stops writes (reads go on) so that a replica can catch up. */
  pauseWrites(addr: string, ms: number): Promise<void>
  unpause(addr: string): Promise<void>
  /**
   * The keys of `slot` on addr that also exist on target are unlinked from addr (SCAN of addr): a
   * promoted replica of a migration's source drops its stale copies of keys the target already
   * holds (docs/migration.md "A failover during a migration"). Returns how many were dropped.
   * Optional so unit-test stubs need not implement it.
   */
  dropKeysHeldBy?(addr: string, target: string, slot: number): Promise<number>
  /**
   * Creates or updates the proxy's ACL user (ACL SETUSER, idempotent: the same rules every time).
   * Optional so unit-test stubs need not implement it.
   */
  setupProxyUser?(addr: string, user: string, password: string, migrateHosts: string[]): Promise<void>
  /** Resolves if user/password log in on the server (an operator-named user). */
  checkLogin?(addr: string, user: string, password: string | undefined): Promise<void>
}

export interface RedisOpsOptions {
  /** Credential and TLS; default: the admin credential (docs/security.md). */
  security?: BackendSecurity
  connectTimeoutMs?: number
  commandTimeoutMs?: number
}

export function redisOps(opts: RedisOpsOptions = {}): RedisOps {
  const connectTimeout = opts.connectTimeoutMs ?? 1500
  const commandTimeout = opts.commandTimeoutMs ?? 3000
  const security = opts.security ?? adminSecurity()

  async function withClient<T>(addr: string, what: string, fn: (r: Redis) => Promise<T>): Promise<T> {
    const {host, port} = parseAddr(addr)
    const r = new Redis({
      host,
      port,
      ...ioredisSecurity(security),
      lazyConnect: true,
      connectTimeout,
      commandTimeout,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      retryStrategy: () => null,
      reconnectOnError: () => false,
    })
    let lastError: unknown
    r.on('error', (err) => {
      lastError ??= err
    })
    try {
      try {
        await r.connect()
      } catch (err) {
        throw new UnreachableError(`server ${addr} does not answer: ${reason(lastError ?? err)}`)
      }
      try {
        return await fn(r)
      } catch (err) {
        if (err instanceof RstoreError) throw err
        throw new UnreachableError(`server ${addr}: ${what} failed: ${reason(err)}`)
      }
    } finally {
      r.disconnect()
    }
  }

  return {
    ping: (addr) =>
      withClient(addr, 'PING', async (r) => {
        const pong = await r.ping()
        if (pong !== 'PONG') throw new UnreachableError(`server ${addr} answered PING with '${pong}'`)
      }),
    replication: (addr) =>
      withClient(addr, 'INFO replication', async (r) => {
        const info = parseInfo(await r.info('replication'))
        const role = info.role === 'slave' ? 'slave' : 'master'
        if (role === 'master') return {role, offset: Number(info.master_repl_offset ?? 0)}
        return {
          role,
          masterAddr: `${info.master_host}:${info.master_port}`,
          linkState: info.master_link_status === 'up' ? 'connected' : (info.master_link_status ?? 'unknown'),
          offset: Number(info.slave_repl_offset ?? 0),
          priority: Number(info.slave_priority ?? info.replica_priority ?? 100),
          linkDownSec: Math.max(0, Number(info.master_link_down_since_seconds ?? 0) || 0),
        }
      }),
    replicaOf: (addr, master) =>
      withClient(addr, master ? `REPLICAOF ${master}` : 'REPLICAOF NO ONE', async (r) => {
        if (master === null) {
          await r.call('REPLICAOF', 'NO', 'ONE')
        } else {
          const m = parseAddr(master)
          // A replica logs in to a password-protected master with the admin credential.
          if (security.password !== undefined) {
            if (security.user) await r.call('CONFIG', 'SET', 'masteruser', security.user)
            await r.call('CONFIG', 'SET', 'masterauth', security.password)
          }
          await r.call('REPLICAOF', m.host, String(m.port))
        }
      }),
    pauseWrites: (addr, ms) =>
      withClient(addr, 'CLIENT PAUSE', async (r) => {
        try {
          await r.call('CLIENT', 'PAUSE', String(ms), 'WRITE')
        } catch {
          await r.call('CLIENT', 'PAUSE', String(ms)) // Redis < 6.2 has no WRITE mode
        }
      }),
    unpause: (addr) =>
      withClient(addr, 'CLIENT UNPAUSE', async (r) => {
        await r.call('CLIENT', 'UNPAUSE')
      }),
    dropKeysHeldBy: (addr, target, slot) =>
      withClient(addr, `SCAN for slot ${slot}`, (src) =>
        withClient(target, `EXISTS of slot ${slot}'s keys`, async (dst) => {
          let cursor = '0'
          let dropped = 0
          do {
            const [next, keys] = await src.scanBuffer(cursor, 'COUNT', 1000)
            cursor = String(next)
            const mine = keys.filter((k) => !isReservedKeyAt(k, 0, k.length) && slotOf(k) === slot)
            if (!mine.length) continue
            const p = dst.pipeline()
            for (const k of mine) p.exists(k)
            const res = (await p.exec()) ?? []
            const held = mine.filter((_, i) => Number(res[i]?.[1] ?? 0) > 0)
            if (held.length) dropped += Number(await src.unlink(...held))
          } while (cursor !== '0')
          return dropped
        }),
      ),
    setupProxyUser: (addr, user, password, hosts) =>
      withClient(addr, `ACL SETUSER ${user}`, async (r) => {
        await r.call('ACL', 'SETUSER', user, ...(await proxyUserRules(r, password, hosts)))
        // Kept over a restart when the server has an ACL file; without one, a proxy re-creates it.
        await r.call('ACL', 'SAVE').catch(() => {})
      }),
    checkLogin: async (addr, user, password) => {
      const probe = redisOps({...opts, security: {...security, user, password}})
      await probe.ping(addr)
    },
  }
}

/**
 * The proxy's ACL rules: every command but the administrative ones the proxy refuses (the refused list
 * in src/resp/commands.ts, plus SELECT/MOVE/SCRIPT/FUNCTION, KEYS, FLUSHDB/FLUSHALL, CONFIG, LASTSAVE and
 * Redis's @admin and @dangerous categories), so a script sent through EVAL cannot run them either (Redis
 * checks ACLs inside scripts). Put back: RESTORE (clients may send it), the fan-out subcommands below
 * (docs/proxy-fanout.md), and MIGRATE with the group servers' hosts as
 * its first argument only: the proxy moves a key off a migrating slot with MIGRATE on access.
 */
async function proxyUserRules(r: Redis, password: string, migrateHosts: string[]): Promise<string[]> {
  const refused = unsupportedCommands()
    .filter((c) => /^administrative|only database 0/.test(c.why))
    .map((c) => c.name)
  const names = [...new Set([...refused, 'select', 'move', 'script', 'function', 'fcall', 'fcall_ro', 'keys', 'flushall', 'flushdb', 'config', 'lastsave'])]
  // Older servers lack some commands (e.g. FAILOVER before 6.2): ACL SETUSER refuses unknown names.
  const info = (await r.call('COMMAND', 'INFO', ...names)) as unknown[]
  const known = names.filter((_, i) => info[i] !== null)
  return [
    'reset', 'on', `>${password}`, '~*', '&*', '+@all', '-@admin', '-@dangerous',
    ...known.map((n) => `-${n}`),
    // MIGRATE logs in to the target and sends SELECT 0 and RESTORE-ASKING there as this user.
    '+restore', '+restore-asking', '+select|0',
    // The fan-out commands (docs/proxy-fanout.md): CONFIG and SCRIPT cannot run inside a script
    // (Redis flags them noscript); LASTSAVE and INFO only read, so EVAL gains nothing from them.
    '+config|get', '+config|set', '+config|resetstat', '+script|load', '+script|exists', '+script|flush', '+lastsave', '+info',
    ...[...new Set(migrateHosts)].map((h) => `+migrate|${h}`),
  ]
}

function parseInfo(text: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const line of text.split(/\r?\n/)) {
    const i = line.indexOf(':')
    if (i > 0 && !line.startsWith('#')) out[line.slice(0, i)] = line.slice(i + 1).trim()
  }
  return out
}

function reason(err: unknown): string {
  const e = err as {code?: string; message?: string}
  const msg = e?.message ?? String(err)
  if (e?.code === 'ECONNREFUSED') return 'connection refused'
  if (/WRONGPASS|NOAUTH|NOPERM/.test(msg)) return `${msg.split('\n')[0]} (check the user and password: RSTORE_BACKEND_USER, RSTORE_BACKEND_PASSWORD or the redis:// URL)`
  if (/timeout|ETIMEDOUT/i.test(msg)) return 'connect timed out'
  if (/Protocol error/i.test(msg)) return 'it does not speak the Redis protocol'
  return msg.split('\n')[0]!
}
