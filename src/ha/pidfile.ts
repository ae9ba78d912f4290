/**
 * Pidfiles of the agent and of its processes (docs/agent.md "Files"): one decimal pid and a newline,
 * written to a temp file and renamed so a reader never sees half a pid.
 */
import {mkdirSync, readFileSync, renameSync, rmSync, writeFileSync} from 'node:fs'
import {dirname, join} from 'node:path'
import {ConflictError} from '../errors.js'

export function writePidfile(path: string, pid: number): void {
  mkdirSync(dirname(path), {recursive: true})
  const tmp = `${path}.${process.pid}.tmp`
  writeFileSync(tmp, `${pid}\n`)
  renameSync(tmp, path)
}

/** The pid in the file; undefined when there is no file or it holds no pid. */
export function readPidfile(path: string): number | undefined {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch {
    return undefined
  }
  const pid = Number(text.trim())
  return Number.isInteger(pid) && pid > 0 ? pid : undefined
}

export function removePidfile(path: string): void {
  rmSync(path, {force: true})
}

/** Where a supervised process's pidfile lives: `<name>.pid` next to the agent's pidfile. */
export function processPidfile(agentPidfile: string, name: string): string {
  return join(dirname(agentPidfile), `${name}.pid`)
}

/** The pid runs: it exists and is not a zombie (dead, waiting to be reaped by a parent that may never do it). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false
  }
  return !isZombie(pid)
}

function isZombie(pid: number): boolean {
  try {
    // `pid (comm) S ...`: the state follows the last ')' (comm may hold spaces and parentheses).
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z'
  } catch {
    // No /proc (not Linux) or the process just went: kill(0) said it existed.
    return false
  }
}

/**
 * Takes the agent pidfile: refuses when a live process holds it (a second agent with the same config
 * would start every process twice); a stale file (its pid is gone) is replaced.
 */
export function claimAgentPidfile(path: string): void {
  const other = readPidfile(path)
  if (other !== undefined && other !== process.pid && pidAlive(other)) {
    throw new ConflictError(`an agent is already running with pidfile ${path} (pid ${other})`, `stop it with 'rstore agent stop' first`)
  }
  writePidfile(path, process.pid)
}

/** The process's argv from /proc (Linux); undefined where there is no /proc or the pid is gone. */
export function procArgv(pid: number): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
    return text.endsWith('\0') ? text.slice(0, -1).split('\0') : text.split('\0')
  } catch {
    return undefined
  }
}
