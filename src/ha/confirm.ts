/**
 * The majority confirmation of a down master (docs/agent.md "Confirmation"): before promoting, the
 * leader asks every other live agent "do you see it?" (GET /check?addr=) and promotes only when more
 * than half of the agents that answered, itself included, see the master down. An agent that cannot
 * be reached (dead, partitioned, no --http-addr) does not count either way, so it cannot block a
 * failover the way Reborn's unanimity could; an agent that sees the master up holds it back.
 */
import type {AgentRecord} from './registry.js'

export interface Vote {
  agent: string
  answer: 'down' | 'up' | 'unreachable'
  detail: string
}

export interface Confirmation {
  confirmed: boolean
  votes: Vote[]
  /** "2 of 3 live agents see it down (c: unreachable)", for the failover record. */
  summary: string
}

/** What GET /check answers. */
export interface CheckAnswer {
  addr: string
  up: boolean
  detail: string
}

export async function confirmDown(selfId: string, agents: AgentRecord[], addr: string, timeoutMs: number): Promise<Confirmation> {
  const others = agents.filter((a) => a.id !== selfId)
  const votes: Vote[] = [{agent: selfId, answer: 'down', detail: 'the leader'}]
  votes.push(...(await Promise.all(others.map((a) => ask(a, addr, timeoutMs)))))
  const down = votes.filter((v) => v.answer === 'down').length
  const live = votes.filter((v) => v.answer !== 'unreachable').length
  const confirmed = down * 2 > live
  const notes = votes.filter((v) => v.agent !== selfId).map((v) => `${v.agent}: ${v.answer}`)
  return {confirmed, votes, summary: `${down} of ${live} live agent(s) see it down${notes.length ? ` (${notes.join(', ')})` : ''}`}
}

async function ask(agent: AgentRecord, addr: string, timeoutMs: number): Promise<Vote> {
  if (!agent.httpAddr) return {agent: agent.id, answer: 'unreachable', detail: 'runs without --http-addr'}
  try {
    const res = await fetch(`http://${agent.httpAddr}/check?addr=${encodeURIComponent(addr)}`, {signal: AbortSignal.timeout(timeoutMs)})
    const body = (await res.json()) as Partial<CheckAnswer>
    if (!res.ok || typeof body.up !== 'boolean') return {agent: agent.id, answer: 'unreachable', detail: `answered HTTP ${res.status}`}
    return {agent: agent.id, answer: body.up ? 'up' : 'down', detail: String(body.detail ?? '')}
  } catch (err) {
    return {agent: agent.id, answer: 'unreachable', detail: (err as Error).message}
  }
}
