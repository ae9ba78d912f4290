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
    for (let i = 1; i <= o.cpu; i++) cluster.fork({RSTORE_WORKER: String(i)})
    let alive = o.cpu
    cluster.on('exit', (w, code, signal) => {
      log(`worker ${w.process.pid} exited (${signal ?? code})`)
      if (--alive === 0) process.exit(0)
    })
    const stop = () => {
      for (const w of Object.values(cluster.workers ?? {})) w?.kill('SIGTERM')
    }
    process.on('SIGTERM', stop)
    process.on('SIGINT', stop)
    return new Promise(() => {})
  }
  const worker = process.env.RSTORE_WORKER
  const id = worker ? `${o.id}-${worker}` : o.id
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
  try {
    await proxy.start()
  } catch (err) {
    await proxy.stop().catch(() => {})
    await coord.close()
    throw err
  }
  const httpServer = await startProxyHttp(proxy, http.host, http.port)
  log(`[${id}] proxy listening on ${listen.host}:${proxy.port}, http on ${o.httpAddr}, epoch ${proxy.table.epoch}; offline until 'rstore proxy online ${o.id}'`)
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
