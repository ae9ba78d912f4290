import {Redis} from 'ioredis'
import {freePort, removeDir, requireBinary, startProcess, tempDir, waitFor} from './process.js'
import type {RedisServer} from './redis.js'

/**
 * Like startRedis (same options, same RedisServer), but its readiness probe reconnects: startRedis's
 * probe is an ioredis client with retryStrategy () => null created right after the spawn, so when
 * redis-server is not listening yet (nothing else blocks the event loop meanwhile) the probe closes
 * for good and the start times out. Here each probe attempt is a fresh connection.
 */
export async function startRedisReady(extraArgs: string[] = []): Promise<RedisServer> {
  const bin = requireBinary('redis-server')
  const port = await freePort()
  const dir = tempDir('redis')
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
  await waitFor(`redis-server on port ${port}`, async () => {
    if (proc.child.exitCode !== null) throw new Error(`redis-server exited: ${proc.output()}`)
    const probe = new Redis({host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null})
    probe.on('error', () => {})
    try {
      await probe.connect()
      return (await probe.ping()) === 'PONG'
    } finally {
      probe.disconnect()
    }
  }, 10000)
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
