import {mkdirSync} from 'node:fs'
import {Redis} from 'ioredis'
import {onFreePort, removeDir, requireBinary, startProcess, tempDir, StopWaiting, waitFor, type Managed} from './process.js'

export interface RedisServer {
  host: string
  port: number
  addr: string
  dir: string
  proc: Managed
  /** A fresh ioredis client to this server (closed by stop()). */
  client(): Redis
  stop(): Promise<void>
}

/**
 * Starts a real redis-server on a free loopback port in a temp dir, without persistence.
 * opts.port / opts.dir restart a server where a stopped one was (same address, e.g. after a kill).
 */
export async function startRedis(extraArgs: string[] = [], opts: {port?: number; dir?: string} = {}): Promise<RedisServer> {
  if (opts.port !== undefined) return startRedisOn(opts.port, extraArgs, opts)
  return onFreePort((port) => startRedisOn(port, extraArgs, opts))
}

async function startRedisOn(port: number, extraArgs: string[], opts: {dir?: string}): Promise<RedisServer> {
  const bin = requireBinary('redis-server')
  const dir = opts.dir ?? tempDir('redis')
  if (opts.dir) mkdirSync(dir, {recursive: true})
  const proc = startProcess(bin, [
    '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no',
    '--protected-mode', 'no', '--daemonize', 'no', ...extraArgs,
  ])
  const clients: Redis[] = []
  const client = () => {
    const c = new Redis({host: '127.0.0.1', port, lazyConnect: false, maxRetriesPerRequest: 1, retryStrategy: () => null})
    c.on('error', () => {})
    clients.push(c)
    return c
  }
  // A fresh probe per attempt: a client whose first connect was refused (server not listening yet)
  // never reconnects (retryStrategy null), so one probe made too early would fail every attempt.
  try {
    await waitFor(`redis-server on port ${port}`, async () => {
      if (proc.child.exitCode !== null) throw new StopWaiting(`redis-server exited: ${proc.output()}`)
      // A time limit: whatever else may hold the port need not answer.
      const probe = new Redis({host: '127.0.0.1', port, lazyConnect: false, maxRetriesPerRequest: 1, retryStrategy: () => null, commandTimeout: 1000})
      probe.on('error', () => {})
      try {
        if ((await probe.ping()) !== 'PONG') return false
        // The server on the port is this one, not another test's that took the port first.
        if (!(await probe.info('server')).includes(`process_id:${proc.child.pid}\r\n`)) {
          throw new Error(`redis-server could not listen on ${port}: address already in use (another server answers there)`)
        }
        return true
      } finally {
        probe.disconnect()
      }
    }, 10000)
  } catch (err) {
    await proc.stop('SIGKILL')
    throw err
  }
  return {
    host: '127.0.0.1',
    port,
    addr: `127.0.0.1:${port}`,
    dir,
    proc,
    client,
    async stop() {
      for (const c of clients) c.disconnect()
      await proc.stop()
      removeDir(dir)
    },
  }
}
