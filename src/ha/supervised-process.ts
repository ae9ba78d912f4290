/**
 * One supervised process (docs/agent.md "Restarts"): started in its own process group with its
 * output appended to its log file, its pid in its pidfile; when it exits it is started again after
 * the backoff delay (restartDelay), counting restarts; stop() sends SIGTERM to the whole group (a
 * proxy's `--cpu` workers, a `sh -c` child) and SIGKILL after the grace period.
 */
import {spawn, type ChildProcess} from 'node:child_process'
import {closeSync, mkdirSync, openSync, writeSync} from 'node:fs'
import {join} from 'node:path'
import type {AgentProcessSpec} from '../config.js'
import {nextQuickExits, restartDelay, type BackoffPolicy} from './backoff.js'
import {pidAlive, procArgv, processPidfile, readPidfile, removePidfile, writePidfile} from './pidfile.js'

export type ProcessState = 'running' | 'backoff' | 'stopping' | 'stopped'

export interface ProcessStatus {
  name: string
  argv: string[]
  state: ProcessState
  pid: number | null
  /** Starts after the first one. */
  restarts: number
  startedAt: number | null
  lastExit: {code: number | null; signal: string | null; at: number; ranForMs: number} | null
  /** When the next start is due (state backoff). */
  nextStartAt: number | null
  logFile: string
}

export interface SupervisorFiles {
  pidfile: string
  logDir: string
}

export class SupervisedProcess {
  private child: ChildProcess | null = null
  private state: ProcessState = 'stopped'
  private restarts = 0
  private startedAt: number | null = null
  private quickExits = 0
  private lastExit: ProcessStatus['lastExit'] = null
  private nextStartAt: number | null = null
  private timer: NodeJS.Timeout | null = null
  private exited: Promise<void> = Promise.resolve()
  readonly logFile: string
  readonly pidfile: string

  constructor(
    readonly spec: AgentProcessSpec,
    files: SupervisorFiles,
    private readonly policy: BackoffPolicy,
    private readonly log: (line: string) => void,
  ) {
    this.logFile = join(files.logDir, `${spec.name}.log`)
    this.pidfile = processPidfile(files.pidfile, spec.name)
  }

  /**
   * Stops what an agent killed with SIGKILL left running: its pidfile names a live pid with exactly
   * this command line. Started again beside it, a redis-server or proxy would fail on its port (a
   * crash loop) or run twice. A pid running anything else is left alone (the pid was reused).
   */
  async stopLeftover(graceMs: number): Promise<void> {
    const pid = readPidfile(this.pidfile)
    if (pid === undefined || !pidAlive(pid)) return
    const argv = procArgv(pid)
    if (!argv || argv.join('\0') !== this.spec.argv.join('\0')) {
      this.log(`${this.spec.name}: ${this.pidfile} names pid ${pid}, which runs something else: left alone`)
      removePidfile(this.pidfile)
      return
    }
    this.log(`${this.spec.name}: pid ${pid} is still running from an earlier agent: stopping it first`)
    signalGroup(pid, 'SIGTERM')
    const deadline = Date.now() + graceMs
    while (pidAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
    signalGroup(pid, 'SIGKILL')
    while (pidAlive(pid) && Date.now() < deadline + 2000) await new Promise((r) => setTimeout(r, 50))
    removePidfile(this.pidfile)
  }

  start(): void {
    this.timer = null
    this.nextStartAt = null
    mkdirSync(join(this.logFile, '..'), {recursive: true})
    const fd = openSync(this.logFile, 'a')
    let child: ChildProcess
    try {
      writeSync(fd, `--- ${new Date().toISOString()} rstore agent: starting ${this.spec.argv.join(' ')}${this.restarts ? ` (restart ${this.restarts})` : ''}\n`)
      child = spawn(this.spec.argv[0]!, this.spec.argv.slice(1), {detached: true, stdio: ['ignore', fd, fd]})
    } finally {
      // The child holds its own copy of the descriptor.
      closeSync(fd)
    }
    this.child = child
    this.state = 'running'
    this.startedAt = Date.now()
    let settle!: () => void
    this.exited = new Promise((r) => (settle = r))
    let done = false
    const onEnd = (code: number | null, signal: string | null, err?: Error) => {
      if (done) return
      done = true
      this.ended(child, code, signal, err)
      settle()
    }
    child.once('error', (err) => onEnd(null, null, err))
    child.once('exit', (code, signal) => onEnd(code, signal))
    if (child.pid !== undefined) {
      writePidfile(this.pidfile, child.pid)
      this.log(`${this.spec.name}: started, pid ${child.pid}`)
    }
  }

  private ended(child: ChildProcess, code: number | null, signal: string | null, err?: Error): void {
    const at = Date.now()
    const ranForMs = at - (this.startedAt ?? at)
    this.lastExit = {code, signal, at, ranForMs}
    this.child = null
    removePidfile(this.pidfile)
    const how = err ? `could not start (${err.message})` : signal ? `killed by ${signal}` : `exited with status ${code}`
    if (this.state === 'stopping' || this.state === 'stopped') {
      this.state = 'stopped'
      this.log(`${this.spec.name}: pid ${child.pid ?? '-'} ${how}; stopped`)
      return
    }
    this.quickExits = nextQuickExits(this.policy, this.quickExits, ranForMs)
    const delay = restartDelay(this.policy, this.quickExits)
    this.state = 'backoff'
    this.nextStartAt = at + delay
    this.log(`${this.spec.name}: pid ${child.pid ?? '-'} ${how} after ${ranForMs} ms; restarting in ${delay} ms`)
    this.timer = setTimeout(() => {
      this.restarts++
      try {
        this.start()
      } catch (e) {
        // The log folder vanished or is not writable: keep trying with the backoff, say why.
        this.state = 'running'
        this.ended(child, null, null, e as Error)
      }
    }, delay)
  }

  /** SIGTERM to the process group, SIGKILL after graceMs; resolves once it has exited. */
  async stop(graceMs: number): Promise<void> {
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
    this.nextStartAt = null
    const child = this.child
    if (!child || child.pid === undefined) {
      this.state = 'stopped'
      return
    }
    this.state = 'stopping'
    signalGroup(child.pid, 'SIGTERM')
    const kill = setTimeout(() => {
      this.log(`${this.spec.name}: pid ${child.pid} still running ${graceMs} ms after SIGTERM: SIGKILL`)
      signalGroup(child.pid!, 'SIGKILL')
    }, graceMs)
    await this.exited
    clearTimeout(kill)
    // Whatever of its group outlived it (a worker that ignored SIGTERM) goes too.
    signalGroup(child.pid, 'SIGKILL')
  }

  status(): ProcessStatus {
    return {
      name: this.spec.name,
      argv: this.spec.argv,
      state: this.state,
      pid: this.child?.pid ?? null,
      restarts: this.restarts,
      startedAt: this.state === 'running' ? this.startedAt : null,
      lastExit: this.lastExit,
      nextStartAt: this.nextStartAt,
      logFile: this.logFile,
    }
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal)
  } catch {
    // The group is gone already.
  }
}
