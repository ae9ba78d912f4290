/**
 * The live HA agents (docs/agent.md "Confirmation"): each agent with --ha keeps `agents/<id>` bound
 * to its own lease, with the address of its HTTP endpoint, so the leader knows whom to ask whether a
 * master is down. A dead agent's key goes with its lease; a lost lease is replaced at the next round.
 */
import {hostname} from 'node:os'
import type {KeyLayout} from '../coord/layout.js'
import type {Coordinator, Lease} from '../coord/types.js'

export interface AgentRecord {
  id: string
  host: string
  pid: number
  /** host:port of its GET /status and /check; null when it runs without --http-addr (it cannot vote). */
  httpAddr: string | null
  since: number
}

export class AgentRegistry {
  private lease: Lease | null = null
  private timer: NodeJS.Timeout | null = null
  private running: Promise<void> = Promise.resolve()
  private stopped = false
  readonly record: AgentRecord

  constructor(
    private readonly coord: Coordinator,
    private readonly keys: KeyLayout,
    id: string,
    httpAddr: string | null,
    private readonly ttlSec: number,
    private readonly log: (line: string) => void,
  ) {
    this.record = {id, host: hostname(), pid: process.pid, httpAddr, since: Date.now()}
  }

  start(): void {
    const tick = () => {
      this.running = this.register()
        .catch((err: Error) => this.log(`agent registry: ${err.message}`))
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, Math.max(100, Math.floor((this.ttlSec * 1000) / 3)))
        })
    }
    tick()
  }

  private async register(): Promise<void> {
    if (this.stopped || this.lease) return
    const lease = await this.coord.grantLease(this.ttlSec)
    if (this.stopped) return void (await lease.revoke().catch(() => {}))
    const key = this.keys.agent(this.record.id)
    await this.coord.txn([], [{type: 'put', key, value: JSON.stringify(this.record), lease: lease.id}])
    this.lease = lease
    lease.onLost(() => {
      if (this.lease === lease) this.lease = null
    })
  }

  /** Every agent whose lease is alive, this one included. */
  list(): Promise<AgentRecord[]> {
    return listAgents(this.coord, this.keys)
  }

  async stop(): Promise<void> {
    this.stopped = true
    if (this.timer) clearTimeout(this.timer)
    await this.running
    const lease = this.lease
    this.lease = null
    await lease?.revoke().catch(() => {})
  }
}

/** The registered agents of a product (read by the leader and by `rstore agent status`). */
export async function listAgents(coord: Coordinator, keys: KeyLayout): Promise<AgentRecord[]> {
  const kvs = await coord.list(keys.agentsPrefix)
  const out: AgentRecord[] = []
  for (const kv of kvs) {
    try {
      const v = JSON.parse(kv.value) as Partial<AgentRecord>
      if (typeof v.id !== 'string') continue
      out.push({id: v.id, host: String(v.host ?? '?'), pid: Number(v.pid ?? 0), httpAddr: typeof v.httpAddr === 'string' ? v.httpAddr : null, since: Number(v.since ?? 0)})
    } catch {
      // A value that is not ours: not an agent.
    }
  }
  return out
}
