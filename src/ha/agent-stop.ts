/**
 * `rstore agent stop` (docs/agent.md): SIGTERM to the pid in the agent pidfile, then waits until
 * that process is gone (the agent stops its processes first). A pid that is not an rstore agent
 * (the pidfile outlived its agent and the pid was reused) is refused, never signalled.
 */
import type {RstoreConfig} from '../config.js'
import {ConflictError, NotFoundError, RstoreError, ValidationError} from '../errors.js'
import {pidAlive, procArgv, readPidfile, removePidfile} from './pidfile.js'

export interface AgentStopResult {
  pid: number
  pidfile: string
  waitedMs: number
}

export async function stopAgent(cfg: RstoreConfig, opts: {timeoutMs?: number} = {}): Promise<AgentStopResult> {
  if (!cfg.agent) throw new ValidationError('the config has no [agent] section: nothing names the agent pidfile (docs/agent.md)')
  const pidfile = cfg.agent.pidfile
  const pid = readPidfile(pidfile)
  if (pid === undefined) throw new NotFoundError(`no agent is running: no pid in ${pidfile}`)
  if (!pidAlive(pid)) {
    removePidfile(pidfile)
    throw new NotFoundError(`no agent is running: pid ${pid} of ${pidfile} is gone (stale pidfile removed)`)
  }
  const cmdline = procArgv(pid)?.join(' ')
  if (cmdline !== undefined && !/\bagent\b/.test(cmdline)) {
    throw new ConflictError(`pid ${pid} in ${pidfile} is not an rstore agent ('${cmdline}'): not signalled`, `remove the stale ${pidfile}`)
  }
  const started = Date.now()
  process.kill(pid, 'SIGTERM')
  const timeout = opts.timeoutMs ?? 30_000
  while (pidAlive(pid)) {
    if (Date.now() - started > timeout) throw new RstoreError('ETIMEOUT', `agent pid ${pid} still running ${timeout} ms after SIGTERM`)
    await new Promise((r) => setTimeout(r, 50))
  }
  return {pid, pidfile, waitedMs: Date.now() - started}
}
