/**
 * `rstore dashboard`: opens the coordinator for the process's life, takes `locks/dashboard`, serves
 * the API until SIGTERM / SIGINT, and stops at once if its lease is lost (another dashboard may then
 * take over). docs/dashboard.md.
 */
import type {RstoreConfig} from '../config.js'
import {openCoordinator} from '../coord/index.js'
import {TopologyStore} from '../coord/topology-store.js'
import {RstoreError, UnreachableError, ValidationError} from '../errors.js'
import {loadTokens} from './auth.js'
import {acquireDashboardLock, DASHBOARD_LOCK_TTL_SEC} from './lock.js'
import {buildServer} from './server.js'
import {JobRunner} from './job-runner.js'

export interface DashboardOptions {
  addr: string
  lockTtlSec?: number
  log: (line: string) => void
  env?: NodeJS.ProcessEnv
}

function parseListenAddr(addr: string): {host: string; port: number} {
  const m = /^(.+):(\d{1,5})$/.exec(addr)
  const port = m ? Number(m[2]) : NaN
  if (!m || port > 65535) throw new ValidationError(`invalid dashboard address '${addr}': use host:port`)
  return {host: m[1]!.replace(/^\[(.*)\]$/, '$1'), port}
}

/** Runs the dashboard; resolves when it was stopped by a signal, rejects when it could not start or lost its lock. */
export async function runDashboard(cfg: RstoreConfig, opts: DashboardOptions): Promise<void> {
  const {host, port} = parseListenAddr(opts.addr)
  const tokens = loadTokens(cfg, opts.env)
  let coord
  try {
    coord = await openCoordinator(cfg)
  } catch (err) {
    if (err instanceof RstoreError) throw err
    throw new UnreachableError(`cannot open the ${cfg.coordinator} coordinator at ${cfg.coordinatorAddr}: ${(err as Error).message.split('\n')[0]}`)
  }
  const store = new TopologyStore(coord, cfg.product)
  try {
    const lease = await acquireDashboardLock(store, opts.addr, {ttlSec: opts.lockTtlSec ?? DASHBOARD_LOCK_TTL_SEC, log: opts.log})
    const runner = new JobRunner(cfg, store)
    const app = await buildServer({cfg, store, tokens, openReads: cfg.dashboardOpenReads === true, runner})
    await app.listen({host, port}).catch(async (err: Error) => {
      await lease.revoke().catch(() => {})
      throw new UnreachableError(`the dashboard cannot listen on ${opts.addr}: ${err.message}`)
    })
    opts.log(`dashboard of product '${cfg.product}' listening on http://${opts.addr}`)
    await new Promise<void>((resolve, reject) => {
      const stop = () => resolve()
      process.once('SIGTERM', stop)
      process.once('SIGINT', stop)
      lease.onLost(() => reject(new RstoreError('ELOCKLOST', "the dashboard lost its coordinator lock (lease expired): stopped so another dashboard can take over")))
    }).finally(async () => {
      await app.close().catch(() => {})
      await runner.stopAll()
      await lease.revoke().catch(() => {})
    })
  } finally {
    await coord.close().catch(() => {})
  }
}
