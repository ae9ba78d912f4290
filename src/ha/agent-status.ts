/**
 * `rstore agent status` (docs/agent.md "CLI"): the product's leader agent and every registered agent
 * (read from the coordinator), each with its own GET /status (processes, checks, failovers). An agent
 * that does not answer is listed with the reason, not dropped. With an address, only that agent is
 * asked (an agent without --ha is not registered anywhere).
 */
import type {RstoreConfig} from '../config.js'
import {openCoordinator} from '../coord/index.js'
import {KeyLayout} from '../coord/layout.js'
import {NotFoundError, UnreachableError} from '../errors.js'
import type {AgentStatus} from './agent.js'
import {parseLeaderRecord, type LeaderRecord} from './leader.js'
import {listAgents, type AgentRecord} from './registry.js'
import {parseHostPort} from './status-http.js'

export interface AgentView {
  id: string
  httpAddr: string | null
  /** The agent's own /status; absent when it could not be read (see error). */
  status?: AgentStatus
  error?: string
}

export interface AgentStatusReport {
  product: string
  /** The leader key of the coordinator (with an address: what that agent last saw). */
  leader: LeaderRecord | null
  token: number | null
  agents: AgentView[]
}

const DEFAULT_TIMEOUT_MS = 2000

async function fetchStatus(httpAddr: string, timeoutMs: number): Promise<AgentStatus> {
  const res = await fetch(`http://${httpAddr}/status`, {signal: AbortSignal.timeout(timeoutMs)})
  if (!res.ok) throw new Error(`GET /status answered ${res.status}`)
  return (await res.json()) as AgentStatus
}

async function view(rec: Pick<AgentRecord, 'id' | 'httpAddr'>, timeoutMs: number): Promise<AgentView> {
  if (!rec.httpAddr) return {id: rec.id, httpAddr: null, error: 'runs without --http-addr'}
  try {
    return {id: rec.id, httpAddr: rec.httpAddr, status: await fetchStatus(rec.httpAddr, timeoutMs)}
  } catch (err) {
    // fetch wraps the socket's error (ECONNREFUSED, a timeout) in 'fetch failed': show the cause.
    const e = err as Error & {cause?: {code?: string; message?: string}}
    return {id: rec.id, httpAddr: rec.httpAddr, error: e.cause?.code ?? e.cause?.message ?? e.message}
  }
}

export async function agentStatus(cfg: RstoreConfig, opts: {addr?: string; timeoutMs?: number} = {}): Promise<AgentStatusReport> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS
  if (opts.addr) {
    parseHostPort(opts.addr, '--addr')
    const v = await view({id: opts.addr, httpAddr: opts.addr}, timeoutMs)
    if (!v.status) throw new UnreachableError(`agent at ${opts.addr} does not answer GET /status: ${v.error}`, "give the agent's --http-addr")
    const l = v.status.leader
    if (l) v.id = l.self
    return {product: cfg.product, leader: l?.leader ?? null, token: l?.token ?? null, agents: [v]}
  }
  const keys = new KeyLayout(cfg.product)
  const coord = await openCoordinator(cfg)
  try {
    const [leaderKv, agents] = await Promise.all([coord.get(keys.agentLeader), listAgents(coord, keys)])
    if (!agents.length && !leaderKv) {
      throw new NotFoundError(`no agent with --ha is registered for product '${cfg.product}'`, "start one with 'rstore agent start --ha --http-addr ...', or give --addr of an agent's --http-addr")
    }
    return {
      product: cfg.product,
      leader: leaderKv ? parseLeaderRecord(leaderKv.value) : null,
      token: leaderKv?.modRevision ?? null,
      agents: await Promise.all(agents.sort((a, b) => a.id.localeCompare(b.id)).map((a) => view(a, timeoutMs))),
    }
  } finally {
    await coord.close().catch(() => {})
  }
}
