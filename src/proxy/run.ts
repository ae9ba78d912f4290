import cluster from 'node:cluster'
import type {RstoreConfig} from '../config.js'
import {openCoordinator} from '../coord/index.js'
import {KeyLayout} from '../coord/layout.js'
import {startProxyHttp} from './http-status.js'
import {parseAddr} from '../topology/model.js'
import {setDefaultSecurity} from '../resp/credentials.js'
import {proxySecurity, proxyUserRepair} from '../backends/proxy-credential.js'
import {setAuthRefusedHook} from '../resp/backend.js'
import {readTlsFiles} from './tls.js'
import {Proxy, DEFAULT_PROXY_OPTIONS, type ProxyOptions} from './proxy.js'

export interface RunProxyOptions extends Partial<ProxyOptions> {
  id: string
  addr: string
  httpAddr: string
  /** Worker processes sharing the port (Reborn's --cpu). */
  cpu: number
  /** PEM files: serve clients over TLS. */
  tlsCert?: string
  tlsKey?: string
}

/** A worker that dies after running this long is restarted at once; sooner, after a doubling delay. */
const WORKER_STABLE_MS = 10_000
const WORKER_MAX_DELAY_MS = 30_000

/**
 * Forks the --cpu workers and starts a worker that exits (kill -9, a crash) again under its number,
 * so it registers as the same `<id>-<n>` (once the dead one's lease has expired) and obeys the shared
 * control key: online again if the proxy is. SIGTERM/SIGINT stop every worker, then the primary.
 */
function superviseWorkers(cpu: number, log: (line: string) => void): void {
  const numberOf = new Map<number, {n: number; startedAt: number; quick: number; ready: boolean; restarted: boolean}>()
  let stopping = false
  let failed = false
  const fork = (n: number, quick: number, restarted: boolean) => {
    const w = cluster.fork({RSTORE_WORKER: String(n)})
    const info = {n, startedAt: Date.now(), quick, ready: false, restarted}
    numberOf.set(w.id, info)
    w.on('message', (m: unknown) => {
      if ((m as {rstore?: string} | null)?.rstore === 'listening') info.ready = true
    })
  }
  for (let i = 1; i <= cpu; i++) fork(i, 0, false)
  cluster.on('exit', (w, code, signal) => {
    const info = numberOf.get(w.id)
    numberOf.delete(w.id)
    if (stopping || !info) {
      log(`worker ${w.process.pid} exited (${signal ?? code})`)
      if (numberOf.size === 0) process.exit(failed ? 1 : 0)
      return
    }
    if (!info.ready && !info.restarted) {
      // A first worker that never served (bad address, port taken, coordinator unreachable): the
      // others would fail alike, so the proxy stops instead of restarting forever. A restarted one
      // (the coordinator briefly down) is tried again with the backoff below.
      log(`worker ${info.n} (pid ${w.process.pid}) exited (${signal ?? code}) before it listened: stopping the proxy`)
      failed = true
      stop()
      return
    }
    const quick = Date.now() - info.startedAt < WORKER_STABLE_MS ? info.quick + 1 : 0
    const delay = quick === 0 ? 0 : Math.min(WORKER_MAX_DELAY_MS, 100 * 2 ** (quick - 1))
    log(`worker ${info.n} (pid ${w.process.pid}) exited (${signal ?? code}): starting it again${delay ? ` in ${delay} ms` : ''}`)
    // Counted as alive while it waits, so a stop meanwhile does not exit before it is forked.
    numberOf.set(-w.id, info)
    setTimeout(() => {
      numberOf.delete(-w.id)
      if (stopping) {
        if (numberOf.size === 0) process.exit(failed ? 1 : 0)
        return
      }
      fork(info.n, quick, true)
    }, delay)
  })
  const stop = () => {
    stopping = true
    for (const w of Object.values(cluster.workers ?? {})) w?.kill('SIGTERM')
    if ([...numberOf.keys()].every((k) => k < 0)) process.exit(failed ? 1 : 0)
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

/**
 * Runs a proxy until SIGTERM/SIGINT. With cpu > 1 the primary forks that many workers sharing the
 * listening port; each worker registers as `<id>-<n>` so the migration barrier waits for all of them.
 */
export async function runProxy(cfg: RstoreConfig, o: RunProxyOptions, log: (line: string) => void): Promise<void> {
  if (o.cpu > 1 && cluster.isPrimary) {
    // The workers share one control key (proxyctl/<id>): reset it once here, so a worker that
    // registers after `proxy online <id>` already ran still comes up online.
    const coord = await openCoordinator(cfg)
    await coord.txn([], [{type: 'put', key: new KeyLayout(cfg.product).proxyControl(o.id), value: JSON.stringify({state: 'offline'})}])
    await coord.close()
    superviseWorkers(o.cpu, log)
    return new Promise(() => {})
  }
  const worker = process.env.RSTORE_WORKER
  const id = worker ? `${o.id}-${worker}` : o.id
  let served: Awaited<ReturnType<typeof startServing>>
  try {
    served = await startServing(cfg, o, id, worker, log)
  } catch (err) {
    // A worker's IPC channel keeps it alive after the error is printed: let it go.
    if (cluster.isWorker) process.disconnect()
    throw err
  }
  const {proxy, coord, httpServer} = served
  await new Promise<void>((resolve) => {
    const stop = () => resolve()
    process.once('SIGTERM', stop)
    process.once('SIGINT', stop)
  })
  log(`[${id}] stopping`)
  httpServer.close()
  httpServer.closeAllConnections()
  await proxy.stop()
  await coord.close()
  // A --cpu worker's IPC channel to the primary keeps it alive after cleanup: leave explicitly.
  if (cluster.isWorker) process.exit(0)
}

/** Opens the coordinator, starts the proxy and its HTTP endpoint; says 'listening' to a --cpu primary. */
async function startServing(cfg: RstoreConfig, o: RunProxyOptions, id: string, worker: string | undefined, log: (line: string) => void) {
  const listen = parseAddr(o.addr)
  const http = parseAddr(o.httpAddr)
  const tls = readTlsFiles(o.tlsCert, o.tlsKey)
  const coord = await openCoordinator(cfg)
  // Backend connections log in as the proxy's ACL user (docs/security.md).
  const sec = await proxySecurity(coord, cfg.product)
  setDefaultSecurity(sec.security)
  if (sec.warning) log(`[${id}] warning: ${sec.warning}`)
  const proxy = new Proxy(coord, cfg.product, {
    ...DEFAULT_PROXY_OPTIONS,
    ...o,
    id,
    controlId: o.id,
    resetControl: !worker,
    host: listen.host,
    port: listen.port,
    httpAddr: o.httpAddr,
    tls,
  }, (line) => log(`[${id}] ${line}`))
  if (sec.managed) setAuthRefusedHook(proxyUserRepair(sec.managed, () => proxy.table.masters, (line) => log(`[${id}] ${line}`)))
  let httpServer: Awaited<ReturnType<typeof startProxyHttp>>
  try {
    await proxy.start()
    httpServer = await startProxyHttp(proxy, http.host, http.port)
  } catch (err) {
    await proxy.stop().catch(() => {})
    await coord.close()
    throw err
  }
  process.send?.({rstore: 'listening'})
  log(`[${id}] proxy listening on ${listen.host}:${proxy.port}, http on ${o.httpAddr}, epoch ${proxy.table.epoch}; ${proxy.status().state === 'online' ? 'online' : `offline until 'rstore proxy online ${o.id}'`}`)
  return {proxy, coord, httpServer}
}
