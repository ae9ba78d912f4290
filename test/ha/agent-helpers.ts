// Runs `rstore agent start` on a config written to a temp dir and reads its GET /status.
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {RSTORE_BIN} from '../harness/cluster.js'
import {freePort, startProcess, waitFor, type Managed} from '../harness/process.js'
import type {AgentStatus} from '../../src/ha/agent.js'

export interface RunningAgent {
  proc: Managed
  httpAddr: string
  configFile: string
  status(): Promise<AgentStatus>
}

/** Writes config.ini with the given [agent] lines into dir and starts an agent on it. */
export async function startAgent(dir: string, agentLines: string[], extraArgs: string[] = [], top: string[] = [], env?: NodeJS.ProcessEnv): Promise<RunningAgent> {
  const configFile = join(dir, 'config.ini')
  writeFileSync(configFile, [...top, '[agent]', 'pidfile = run/agent.pid', 'log_dir = logs', ...agentLines, ''].join('\n'))
  const httpAddr = `127.0.0.1:${await freePort()}`
  const proc = startProcess(process.execPath, [RSTORE_BIN, 'agent', 'start', '-c', configFile, '--http-addr', httpAddr, '--stop-grace', '3000', ...extraArgs], {cwd: dir, ...(env ? {env} : {})})
  const status = async () => {
    const res = await fetch(`http://${httpAddr}/status`)
    return (await res.json()) as AgentStatus
  }
  await waitFor(`agent status on ${httpAddr}`, async () => {
    if (proc.child.exitCode !== null) throw new Error(`agent exited: ${proc.output()}`)
    await status()
    return true
  }, 20_000)
  return {proc, httpAddr, configFile, status}
}

/** A pid runs (a zombie left to an init that does not reap does not count). */
export {pidAlive as alive} from '../../src/ha/pidfile.js'
