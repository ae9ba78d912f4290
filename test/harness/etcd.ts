import {freePort, removeDir, requireBinary, startProcess, tempDir, waitFor, type Managed} from './process.js'

export interface EtcdServer {
  endpoint: string
  dir: string
  proc: Managed
  stop(): Promise<void>
}

/** Starts a real single-node etcd on free loopback ports in a temp dir. */
export async function startEtcd(): Promise<EtcdServer> {
  const bin = requireBinary('etcd')
  const clientPort = await freePort()
  const peerPort = await freePort()
  const dir = tempDir('etcd')
  const endpoint = `http://127.0.0.1:${clientPort}`
  const proc = startProcess(bin, [
    '--name', 'rstore-test', '--data-dir', dir,
    '--listen-client-urls', endpoint, '--advertise-client-urls', endpoint,
    '--listen-peer-urls', `http://127.0.0.1:${peerPort}`,
    '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPort}`,
    '--initial-cluster', `rstore-test=http://127.0.0.1:${peerPort}`,
    '--log-level', 'error',
    // slot init and range-set write up to 1025 keys in one txn (etcd's default limit is 128).
    '--max-txn-ops', '4096',
  ], {env: {...process.env, ETCD_UNSUPPORTED_ARCH: process.arch === 'x64' ? '' : process.arch}})
  await waitFor(`etcd on ${endpoint} (${proc.output()})`, async () => {
    const res = await fetch(`${endpoint}/health`)
    return res.ok
  }, 20000, 100)
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
