import {freePort, onFreePort, removeDir, requireBinary, startProcess, tempDir, StopWaiting, waitFor, type Managed} from './process.js'

export interface EtcdServer {
  endpoint: string
  dir: string
  proc: Managed
  stop(): Promise<void>
}

/**
 * Starts a real single-node etcd on free loopback ports in a temp dir.
 * Short heartbeat/election timeouts make the smallest lease TTL etcd grants 1 s (it raises shorter
 * TTLs to 1.5 x election timeout), so lease tests stay fast.
 */
export async function startEtcd(): Promise<EtcdServer> {
  return onFreePort((clientPort) => startEtcdOn(clientPort))
}

async function startEtcdOn(clientPort: number): Promise<EtcdServer> {
  const bin = requireBinary('etcd')
  const peerPort = await freePort()
  const dir = tempDir('etcd')
  const endpoint = `http://127.0.0.1:${clientPort}`
  const proc = startProcess(bin, [
    '--name', 'rstore-test', '--data-dir', dir,
    '--listen-client-urls', endpoint, '--advertise-client-urls', endpoint,
    '--listen-peer-urls', `http://127.0.0.1:${peerPort}`,
    '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPort}`,
    '--initial-cluster', `rstore-test=http://127.0.0.1:${peerPort}`,
    '--heartbeat-interval', '50', '--election-timeout', '500',
    '--log-level', 'error',
    // slot init and range-set write up to 1025 keys in one txn (etcd's default limit is 128).
    '--max-txn-ops', '4096',
  ], {env: {...process.env, ETCD_UNSUPPORTED_ARCH: process.arch === 'x64' ? '' : process.arch}})
  try {
    await waitFor(`etcd on ${endpoint}`, async () => {
      if (proc.child.exitCode !== null) throw new StopWaiting(`etcd exited with code ${proc.child.exitCode}: ${proc.output()}`)
      const res = await fetch(`${endpoint}/health`, {signal: AbortSignal.timeout(1000)})
      const body = (await res.json()) as {health?: string}
      return res.ok && body.health === 'true'
    }, 20000, 100)
  } catch (err) {
    await proc.stop('SIGKILL')
    removeDir(dir)
    throw new Error(`${(err as Error).message}\netcd output:\n${proc.output()}`)
  }
  return {
    endpoint,
    dir,
    proc,
    async stop() {
      await proc.stop()
      removeDir(dir)
    },
  }
}
