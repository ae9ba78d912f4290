/**
 * `rstore agent start` (docs/agent.md): takes the agent pidfile, starts every process of the
 * `[agent]` section, restarts those that exit, serves /status, and on SIGTERM or SIGINT stops
 * the processes, then removes its pidfile.
 */
import type {Server} from 'node:http'
import type {RstoreConfig} from '../config.js'
import {openCoordinator} from '../coord/index.js'
import {KeyLayout} from '../coord/layout.js'
import type {Coordinator} from '../coord/types.js'
import {redisOps} from '../backends/redis-ops.js'
import {LeaderElection, type LeaderStatus} from './leader.js'
import {MasterWatch, type FailoverRecord} from './master-watch.js'
import {NotFoundError, ValidationError} from '../errors.js'
import {TopologyStore} from '../coord/topology-store.js'
import {confirmDown, type CheckAnswer} from './confirm.js'
import {DEFAULT_FAILOVER_BARRIER_MS} from './failover-barrier.js'
import {AgentMetrics} from './metrics.js'
import {AgentRegistry, type AgentRecord} from './registry.js'
import {hostname} from 'node:os'
import {parseHostPort} from './status-http.js'
import {claimAgentPidfile, readPidfile, removePidfile} from './pidfile.js'
import {startStatusHttp} from './status-http.js'
import {DEFAULT_STOP_GRACE_MS, Supervisor} from './supervisor.js'
import type {ProcessStatus} from './supervised-process.js'

export interface AgentOptions {
  httpAddr?: string
  stopGraceMs?: number
  /** --ha: take part in the leader election of the product's agents. */
  ha?: {id: string; leaseTtlSec: number; checkIntervalMs: number; downAfterMs: number; barrierTimeoutMs?: number}
  /** Stops the agent like SIGTERM does (tests running it in-process). */
  signal?: AbortSignal
}

export interface AgentStatus {
  pid: number
  startedAt: number
  processes: ProcessStatus[]
  /** With --ha. */
  leader?: LeaderStatus
  /** With --ha: the last failovers this agent decided as the leader, oldest first. */
  failovers?: FailoverRecord[]
  /** With --ha: the live agents of the product (their coordinator registrations). */
  agents?: AgentRecord[]
}

/** The address other agents reach this one's HTTP at: a wildcard bind is advertised as the host name. */
function advertised(httpAddr: string | undefined): string | null {
  if (!httpAddr) return null
  const {host, port} = parseHostPort(httpAddr, '--http-addr')
  return ['0.0.0.0', '::', ''].includes(host) ? `${hostname()}:${port}` : httpAddr
}

export async function runAgent(cfg: RstoreConfig, opts: AgentOptions, log: (line: string) => void): Promise<void> {
  const agent = cfg.agent
  if (!agent) throw new ValidationError('the config has no [agent] section: declare the processes to run there (docs/agent.md)')
  if (!agent.processes.length) throw new ValidationError('the [agent] section declares no process: add process.<name> = <command line>')
  const stamp = (line: string) => log(`${new Date().toISOString()} ${line}`)
  claimAgentPidfile(agent.pidfile)
  const supervisor = new Supervisor(agent, stamp)
  const startedAt = Date.now()
  let coord: Coordinator | undefined
  let election: LeaderElection | undefined
  let watch: MasterWatch | undefined
  let registry: AgentRegistry | undefined
  let check: ((addr: string) => Promise<CheckAnswer>) | undefined
  const metrics = new AgentMetrics(() => supervisor.status(), () => (election ? election.isLeader : null))
  const status = async (): Promise<AgentStatus> => ({
    pid: process.pid,
    startedAt,
    processes: supervisor.status(),
    ...(election && watch ? {leader: election.status(), failovers: watch.failovers} : {}),
    ...(registry ? {agents: await registry.list().catch(() => [])} : {}),
  })
  let http: Server | undefined
  let onSignal: (() => void) | undefined
  try {
    if (opts.ha) {
      coord = await openCoordinator(cfg)
      election = new LeaderElection(coord, new KeyLayout(cfg.product), opts.ha.id, opts.ha.leaseTtlSec, stamp)
      // Short timeouts: a check must not outlast its interval.
      const timeout = Math.max(200, Math.min(1000, opts.ha.checkIntervalMs))
      const redis = redisOps({connectTimeoutMs: timeout, commandTimeoutMs: timeout})
      const reg = (registry = new AgentRegistry(coord, new KeyLayout(cfg.product), opts.ha.id, advertised(opts.httpAddr), opts.ha.leaseTtlSec, stamp))
      const selfId = opts.ha.id
      watch = new MasterWatch(coord, cfg.product, election, redis, {
        checkIntervalMs: opts.ha.checkIntervalMs,
        downAfterMs: opts.ha.downAfterMs,
        barrierTimeoutMs: opts.ha.barrierTimeoutMs ?? DEFAULT_FAILOVER_BARRIER_MS,
        confirm: async (addr) => confirmDown(selfId, await reg.list(), addr, timeout * 2),
        metrics,
      }, stamp)
      const topology = new TopologyStore(coord, cfg.product)
      check = async (addr) => {
        const topo = await topology.load()
        if (![...topo.groups.values()].some((g) => g.servers.some((s) => s.addr === addr))) {
          throw new NotFoundError(`${addr} is not a server of product '${cfg.product}': the agent checks only recorded servers`)
        }
        return redis.ping(addr).then(
          () => ({addr, up: true, detail: 'answers PING'}),
          (err: Error) => ({addr, up: false, detail: err.message}),
        )
      }
    }
    if (opts.httpAddr) http = await startStatusHttp(opts.httpAddr, {status, metrics: () => metrics.render(), ...(check ? {check} : {})})
    const stopped = new Promise<string>((resolve) => {
      const sigterm = () => resolve('SIGTERM')
      const sigint = () => resolve('SIGINT')
      const abort = () => resolve('a stop request')
      process.once('SIGTERM', sigterm)
      process.once('SIGINT', sigint)
      opts.signal?.addEventListener('abort', abort, {once: true})
      if (opts.signal?.aborted) abort()
      onSignal = () => {
        process.off('SIGTERM', sigterm)
        process.off('SIGINT', sigint)
        opts.signal?.removeEventListener('abort', abort)
      }
    })
    stamp(`agent pid ${process.pid}: supervising ${agent.processes.map((p) => p.name).join(', ')}${opts.httpAddr ? `; status on http://${opts.httpAddr}/status` : ''}`)
    await supervisor.start(opts.stopGraceMs ?? DEFAULT_STOP_GRACE_MS)
    registry?.start()
    election?.start()
    watch?.start()
    const why = await stopped
    stamp(`agent: ${why}: stopping ${agent.processes.length} process(es)`)
  } finally {
    onSignal?.()
    await watch?.stop()
    await election?.stop().catch((err: Error) => stamp(`leader election: ${err.message}`))
    await registry?.stop()
    await coord?.close().catch(() => {})
    await supervisor.stop(opts.stopGraceMs ?? DEFAULT_STOP_GRACE_MS)
    if (http) await new Promise<void>((r) => http!.close(() => r()))
    // Another agent may have replaced a stale file meanwhile: remove only our own.
    if (readPidfile(agent.pidfile) === process.pid) removePidfile(agent.pidfile)
  }
  stamp('agent: stopped')
}
