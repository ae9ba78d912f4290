/**
 * The agent's Prometheus metrics (docs/agent.md "HTTP"), on its own prom-client registry: master
 * checks and failovers counted as they happen, the supervised processes and the leadership read at
 * scrape time.
 */
import {Counter, Gauge, Registry} from 'prom-client'
import type {ProcessStatus} from './supervised-process.js'

export class AgentMetrics {
  readonly registry = new Registry()
  readonly checks: Counter<'result'>
  readonly failovers: Counter<'result'>
  readonly proxiesOffline: Counter

  constructor(processes: () => ProcessStatus[], isLeader: () => boolean | null) {
    const registers = [this.registry]
    this.checks = new Counter({name: 'rstore_agent_master_checks_total', help: 'master checks by the leader, by result (ok, failed)', labelNames: ['result'], registers})
    this.failovers = new Counter({
      name: 'rstore_agent_failovers_total',
      help: 'failover decisions, by result (promoted, no-candidate, unconfirmed, refused, failed)',
      labelNames: ['result'],
      registers,
    })
    this.proxiesOffline = new Counter({name: 'rstore_agent_proxies_offline_total', help: 'proxies set offline for not applying a failover epoch in time', registers})
    new Gauge({
      name: 'rstore_agent_process_restarts',
      help: 'restarts of each supervised process since the agent started',
      labelNames: ['process'],
      registers,
      collect() {
        this.reset()
        for (const p of processes()) this.set({process: p.name}, p.restarts)
      },
    })
    new Gauge({
      name: 'rstore_agent_process_running',
      help: '1 while the supervised process runs',
      labelNames: ['process'],
      registers,
      collect() {
        this.reset()
        for (const p of processes()) this.set({process: p.name}, p.state === 'running' ? 1 : 0)
      },
    })
    new Gauge({
      name: 'rstore_agent_leader',
      help: '1 while this agent is the leader (absent without --ha)',
      registers,
      collect() {
        this.reset()
        const l = isLeader()
        if (l !== null) this.set(l ? 1 : 0)
      },
    })
  }

  async render(): Promise<{contentType: string; body: string}> {
    return {contentType: this.registry.contentType, body: await this.registry.metrics()}
  }
}
