import {Flags} from '@oclif/core'
import {RstoreCommand} from '../../cli/base-command.js'
import {agentStatus, type AgentStatusReport, type AgentView} from '../../ha/agent-status.js'

const iso = (ms: number) => new Date(ms).toISOString()

function agentLines(a: AgentView, leaderId: string | undefined): string[] {
  const head = `agent ${a.id}${a.id === leaderId ? ' (leader)' : ''} ${a.httpAddr ?? '-'}`
  if (!a.status) return [`${head}: not answering (${a.error})`]
  const s = a.status
  const running = s.processes.filter((p) => p.state === 'running').length
  const out = [`${head} pid ${s.pid} up since ${iso(s.startedAt)}: ${running}/${s.processes.length} processes running`]
  for (const p of s.processes) out.push(`  process ${p.name}: ${p.state}${p.pid ? ` pid ${p.pid}` : ''}, ${p.restarts} restart(s)`)
  for (const f of s.failovers ?? []) {
    out.push(`  ${iso(f.at)} group ${f.group} ${f.oldMaster} -> ${f.newMaster ?? '-'}: ${f.result} after ${f.at - f.downSince} ms down${f.epoch ? `, epoch ${f.epoch}` : ''}: ${f.detail}`)
    if (f.barrier) out.push(`    proxies: ${f.barrier.detail}`)
  }
  return out
}

function human(r: AgentStatusReport): string {
  const l = r.leader
  const lines = [`product ${r.product}: ${l ? `leader ${l.id} (host ${l.host}, pid ${l.pid}, since ${iso(l.since)}, fencing token ${r.token})` : 'no leader'}`]
  for (const a of r.agents) lines.push(...agentLines(a, l?.id))
  return lines.join('\n')
}

export default class AgentStatus extends RstoreCommand<typeof AgentStatus> {
  static override description = `Show the product's agents: the leader (from the coordinator), and for every agent
registered with --ha its processes and the failovers it decided, read from its GET /status. An agent
that does not answer is listed as such. --addr asks one agent only (one running without --ha).`

  static override examples = ['<%= config.bin %> agent status -c config.ini', '<%= config.bin %> agent status --addr 127.0.0.1:11100']

  static override flags = {
    addr: Flags.string({description: "ask only the agent whose --http-addr this is"}),
    timeout: Flags.integer({description: 'ms to wait for each agent', default: 2000, min: 1}),
  }

  async run(): Promise<void> {
    const res = await agentStatus(this.cfg, {addr: this.flags.addr, timeoutMs: this.flags.timeout})
    this.output(res, () => human(res))
  }
}
