/** Every process of the `[agent]` section (docs/agent.md): started together, stopped together. */
import type {AgentConfig} from '../config.js'
import {SupervisedProcess, type ProcessStatus} from './supervised-process.js'

export const DEFAULT_STOP_GRACE_MS = 10_000

export class Supervisor {
  readonly processes: SupervisedProcess[]

  constructor(agent: AgentConfig, log: (line: string) => void) {
    this.processes = agent.processes.map((spec) => new SupervisedProcess(spec, agent, agent, log))
  }

  /** Stops what a killed agent left running (stopLeftover), then starts every process. */
  async start(graceMs = DEFAULT_STOP_GRACE_MS): Promise<void> {
    await Promise.all(this.processes.map((p) => p.stopLeftover(graceMs)))
    for (const p of this.processes) p.start()
  }

  async stop(graceMs = DEFAULT_STOP_GRACE_MS): Promise<void> {
    await Promise.all(this.processes.map((p) => p.stop(graceMs)))
  }

  status(): ProcessStatus[] {
    return this.processes.map((p) => p.status())
  }
}
