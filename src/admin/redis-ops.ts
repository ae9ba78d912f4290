import {Redis} from 'ioredis'
import {RstoreError, UnreachableError} from '../errors.js'
import {parseAddr} from '../topology/model.js'

/** What a server says about its replication (ROLE and INFO replication). */
export interface ReplicationState {
  role: 'master' | 'slave'
  /** For a slave: the master it replicates from, host:port. */
  masterAddr?: string
  /** For a slave: 'connected' once the link is up. */
  linkState?: string
  /** master: master_repl_offset; slave: slave_repl_offset (the bytes of the stream it has applied). */
  offset: number
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
}

export interface RedisOpsOptions {
  connectTimeoutMs?: number
  commandTimeoutMs?: number
}

export function redisOps(opts: RedisOpsOptions = {}): RedisOps {
  const connectTimeout = opts.connectTimeoutMs ?? 1500
  const commandTimeout = opts.commandTimeoutMs ?? 3000

  async function withClient<T>(addr: string, what: string, fn: (r: Redis) => Promise<T>): Promise<T> {
    const {host, port} = parseAddr(addr)
    const r = new Redis({
      host,
      port,
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
        }
      }),
    replicaOf: (addr, master) =>
      withClient(addr, master ? `REPLICAOF ${master}` : 'REPLICAOF NO ONE', async (r) => {
        if (master === null) {
          await r.call('REPLICAOF', 'NO', 'ONE')
        } else {
          const m = parseAddr(master)
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
  }
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
  if (/timeout|ETIMEDOUT/i.test(msg)) return 'connect timed out'
  if (/Protocol error/i.test(msg)) return 'it does not speak the Redis protocol'
  return msg.split('\n')[0]!
}
