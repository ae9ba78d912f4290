import {Redis} from 'ioredis'
import {freePort, removeDir, requireBinary, startProcess, tempDir, waitFor, type Managed} from './process.js'

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

/** Starts a real redis-server on a free loopback port in a temp dir, without persistence. */
export async function startRedis(extraArgs: string[] = []): Promise<RedisServer> {
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
  const probe = client()
  await waitFor(`redis-server on port ${port} (${proc.output()})`, async () => (await probe.ping()) === 'PONG', 10000)
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
