/**
 * A whole rstore cluster for end-to-end tests: N redis groups (one master each), a coordinator
 * (embedded SQLite file in a temp dir, or a real etcd), the slot table set up through the BUILT CLI
 * (`node bin/run.js ...`, so run `npx tsc` first), and M proxies started as child processes
 * (`rstore proxy start`) and put online.
 *
 *   const c = await startCluster({groups: 2, proxies: 2})
 *   try {
 *     const r = c.proxies[0]!.client()          // ioredis client to proxy 1
 *     await r.set('k', 'v')
 *     c.groupOf('k')                             // 1 or 2: which group serves the key
 *     await c.cliOk(['slot', 'range-set', '0', '511', '2', 'online', '--force'])
 *   } finally {
 *     await c.stop()
 *   }
 *
 * Everything it starts is stopped by stop(), and killed anyway when the test process exits.
 */
import {spawn} from 'node:child_process'
import {Redis} from 'ioredis'
import {fileURLToPath} from 'node:url'
import {join} from 'node:path'
import {DEFAULT_CONFIG} from '../../src/config.js'
import {openCoordinator, type Coordinator} from '../../src/coord/index.js'
import {TopologyStore} from '../../src/coord/topology-store.js'
import {slotOf, SLOT_COUNT} from '../../src/topology/slots.js'
import {startEtcd, type EtcdServer} from './etcd.js'
import {freePort, onFreePort, removeDir, startProcess, tempDir, StopWaiting, waitFor, type Managed} from './process.js'
import {startRedis, type RedisServer} from './redis.js'

/** The built CLI entry point (this file runs from dist/test/harness/). */
export const RSTORE_BIN = fileURLToPath(new URL('../../../bin/run.js', import.meta.url))

export interface ClusterOptions {
  /** Server groups, one redis-server master each; group i+1 is groups[i]. Default 2. */
  groups?: number
  /** Proxies started (ids proxy_1, proxy_2, ...). Default 1. */
  proxies?: number
  /** Default 'embedded' (a SQLite file in the cluster's temp dir). */
  coordinator?: 'embedded' | 'etcd'
  /**
   * How the 1024 slots are assigned, all online: 'split' = equal contiguous ranges over the groups
   * (2 groups: 0-511 -> 1, 512-1023 -> 2), 'group1' = all on group 1, 'none' = left offline.
   * Default 'split'.
   */
  slots?: 'split' | 'group1' | 'none'
  /** Product name. Default 'test'. */
  product?: string
  /** Extra flags for every `proxy start` (e.g. ['--proxy-auth', 'secret']). */
  proxyArgs?: string[]
  /** Put the proxies online after start. Default true. */
  online?: boolean
  /** Extra redis-server arguments for every group's server. */
  redisArgs?: string[]
}

export interface ClusterProxy {
  id: string
  port: number
  httpPort: number
  /** 127.0.0.1:port */
  addr: string
  httpAddr: string
  proc: Managed
  /** A fresh ioredis client (default options) to this proxy; closed by stop(). */
  client(): Redis
  /** GET on the proxy's HTTP endpoint (/status, /metrics). */
  http(path: string): Promise<{status: number; body: string}>
  /** Parsed /status. */
  status(): Promise<Record<string, unknown>>
  stop(signal?: NodeJS.Signals): Promise<void>
}

export interface CliResult {
  code: number
  stdout: string
  stderr: string
}

export interface Cluster {
  /** groups[i] is the master of group i+1. */
  groups: RedisServer[]
  proxies: ClusterProxy[]
  /** Flags every CLI call needs: --coordinator, --coordinator-addr, --product. */
  coordinatorArgs: string[]
  coordinator: 'embedded' | 'etcd'
  product: string
  /** The cluster's temp dir (the embedded coordinator's file lives here). */
  dir: string
  etcd?: EtcdServer
  /** Runs `rstore <args> <coordinatorArgs>` with the built binary. */
  cli(args: string[], opts?: {timeoutMs?: number}): Promise<CliResult>
  /** cli() that throws (with stderr) unless the exit code is 0; returns stdout. */
  cliOk(args: string[], opts?: {timeoutMs?: number}): Promise<string>
  /** Starts (and by default puts online) one more proxy on this cluster; nodeArgs go to node (e.g. --cpu-prof). */
  startProxy(opts?: {id?: string; args?: string[]; online?: boolean; nodeArgs?: string[]; env?: NodeJS.ProcessEnv}): Promise<ClusterProxy>
  /** Opens the coordinator in this process (close it with closeStore / it is closed by stop()). */
  openStore(): Promise<TopologyStore>
  /** The group (1-based) that serves a key under the initial slot assignment. */
  groupOf(key: string | Buffer): number
  /** The slot range [from, to] the initial assignment gave a group (1-based); undefined for none. */
  rangeOf(group: number): [number, number] | undefined
  /** SIGKILLs group g's server (1-based); restartGroup brings it back on the same port. */
  killGroup(g: number): Promise<void>
  restartGroup(g: number): Promise<RedisServer>
  stop(): Promise<void>
}

/** Runs the built CLI with the given arguments. */
export function runCli(args: string[], opts: {cwd?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv} = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [RSTORE_BIN, ...args], {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`rstore ${args.join(' ')} timed out after ${opts.timeoutMs ?? 30000} ms\n${stdout}${stderr}`))
    }, opts.timeoutMs ?? 30000)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({code: code ?? -1, stdout, stderr})
    })
  })
}

/** Contiguous equal ranges of the 1024 slots over n groups. */
export function splitRanges(n: number): [number, number][] {
  const out: [number, number][] = []
  const per = Math.floor(SLOT_COUNT / n)
  for (let g = 0; g < n; g++) out.push([g * per, g === n - 1 ? SLOT_COUNT - 1 : (g + 1) * per - 1])
  return out
}

export async function startCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  const nGroups = opts.groups ?? 2
  const nProxies = opts.proxies ?? 1
  const coordinator = opts.coordinator ?? 'embedded'
  const product = opts.product ?? 'test'
  const slotMode = opts.slots ?? 'split'
  const dir = tempDir('cluster')
  const groups: RedisServer[] = []
  const proxies: ClusterProxy[] = []
  const stores: Coordinator[] = []
  const clients: Redis[] = []
  let etcd: EtcdServer | undefined
  const ranges: ([number, number] | undefined)[] =
    slotMode === 'split' ? splitRanges(nGroups) : slotMode === 'group1' ? [[0, SLOT_COUNT - 1]] : []
  let nextProxy = 1

  const cluster: Cluster = {
    groups,
    proxies,
    coordinatorArgs: [],
    coordinator,
    product,
    dir,
    async cli(args, o = {}) {
      return runCli([...args, ...cluster.coordinatorArgs], {cwd: dir, timeoutMs: o.timeoutMs})
    },
    async cliOk(args, o = {}) {
      const r = await cluster.cli(args, o)
      if (r.code !== 0) throw new Error(`rstore ${args.join(' ')} exited with ${r.code}:\n${r.stderr}${r.stdout}`)
      return r.stdout
    },
    async startProxy(o = {}) {
      const id = o.id ?? `proxy_${nextProxy++}`
      // With --cpu N every worker registers and prints its own line: wait for all of them.
      const allArgs = [...(opts.proxyArgs ?? []), ...(o.args ?? [])]
      const cpuAt = allArgs.lastIndexOf('--cpu')
      const workers = cpuAt >= 0 ? Number(allArgs[cpuAt + 1]) : 1
      // A port taken by a concurrent test before the proxy listens: the proxy exits with EADDRINUSE
      // ("address already in use") and onFreePort starts it again on other ports.
      const {port, httpPort, proc} = await onFreePort(async (port) => {
        const httpPort = await freePort()
        const started = startProcess(
          process.execPath,
          [...(o.nodeArgs ?? []), RSTORE_BIN, 'proxy', 'start', '--addr', `127.0.0.1:${port}`, '--http-addr', `127.0.0.1:${httpPort}`, '--id', id, ...allArgs, ...cluster.coordinatorArgs],
          {cwd: dir, env: o.env ? {...process.env, ...o.env} : undefined},
        )
        await waitFor(`proxy ${id} listening`, () => {
          if (started.child.exitCode !== null) throw new StopWaiting(`proxy ${id} exited with ${started.child.exitCode}`)
          return (started.output().match(/listening on/g) ?? []).length >= workers
        }, 20000, 50).catch(async (err: Error) => {
          await started.stop('SIGKILL')
          throw new Error(`${err.message}\nproxy output:\n${started.output()}`)
        })
        return {port, httpPort, proc: started}
      })
      const addr = `127.0.0.1:${port}`
      const httpAddr = `127.0.0.1:${httpPort}`
      const p: ClusterProxy = {
        id,
        port,
        httpPort,
        addr,
        httpAddr,
        proc,
        client() {
          const c = new Redis({host: '127.0.0.1', port})
          c.on('error', () => {})
          clients.push(c)
          return c
        },
        async http(path) {
          const res = await fetch(`http://${httpAddr}${path}`, {signal: AbortSignal.timeout(5000)})
          return {status: res.status, body: await res.text()}
        },
        async status() {
          return JSON.parse((await p.http('/status')).body) as Record<string, unknown>
        },
        stop: (signal) => proc.stop(signal),
      }
      proxies.push(p)
      if (o.online ?? opts.online ?? true) await cluster.cliOk(['proxy', 'online', id])
      return p
    },
    async openStore() {
      const coord = await openCoordinator({
        ...DEFAULT_CONFIG,
        coordinator,
        coordinatorAddr: coordinator === 'etcd' ? etcd!.endpoint : join(dir, 'meta.db'),
        product,
      })
      stores.push(coord)
      return new TopologyStore(coord, product)
    },
    groupOf(key) {
      const s = slotOf(key)
      const i = ranges.findIndex((r) => r !== undefined && s >= r[0] && s <= r[1])
      if (i < 0) throw new Error(`slot ${s} is not assigned to any group in this cluster`)
      return i + 1
    },
    rangeOf(group) {
      return ranges[group - 1]
    },
    async killGroup(g) {
      await groups[g - 1]!.proc.stop('SIGKILL')
    },
    async restartGroup(g) {
      const old = groups[g - 1]!
      const s = await startRedis(opts.redisArgs ?? [], {port: old.port, dir: old.dir})
      groups[g - 1] = s
      return s
    },
    async stop() {
      for (const c of clients) c.disconnect()
      await Promise.all(proxies.map((p) => p.stop()))
      for (const s of stores) await s.close().catch(() => {})
      await Promise.all(groups.map((g) => g.stop()))
      await etcd?.stop()
      removeDir(dir)
    },
  }

  try {
    const redisStarts = Array.from({length: nGroups}, () => startRedis(opts.redisArgs ?? []))
    const [servers] = await Promise.all([Promise.all(redisStarts), coordinator === 'etcd' ? startEtcd().then((e) => (etcd = e)) : null])
    groups.push(...servers)
    cluster.etcd = etcd
    cluster.coordinatorArgs =
      coordinator === 'etcd'
        ? ['--coordinator', 'etcd', '--coordinator-addr', etcd!.endpoint, '--product', product]
        : ['--coordinator', 'embedded', '--coordinator-addr', join(dir, 'meta.db'), '--product', product]
    await cluster.cliOk(['slot', 'init'])
    for (let g = 1; g <= nGroups; g++) await cluster.cliOk(['server', 'add', String(g), groups[g - 1]!.addr, 'master'])
    for (let g = 1; g <= ranges.length; g++) {
      const r = ranges[g - 1]
      if (r) await cluster.cliOk(['slot', 'range-set', String(r[0]), String(r[1]), String(g), 'online'])
    }
    await Promise.all(Array.from({length: nProxies}, () => cluster.startProxy()))
    proxies.sort((a, b) => a.id.localeCompare(b.id, 'en', {numeric: true}))
  } catch (err) {
    await cluster.stop().catch(() => {})
    throw err
  }
  return cluster
}
