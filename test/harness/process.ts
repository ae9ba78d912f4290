import {spawn, spawnSync, type ChildProcess} from 'node:child_process'
import {mkdtempSync, rmSync} from 'node:fs'
import {createServer} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

/** Every child the harness started; killed when the test process exits, whatever happens. */
const children = new Set<ChildProcess>()
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL')
})

/**
 * Ports for test servers come from below Linux's ephemeral range (32768-60999), where no bind(0) and
 * no outgoing connection of any process lands, and each test process starts in its own block (by
 * pid), so test files running side by side do not draw the same port. A port is never handed out
 * twice by one process, and is checked free (bind, release) before it is.
 */
const PORT_BASE = 10_000
const PORT_BLOCK = 40
const PORT_BLOCKS = 560
const handedOut = new Set<number>()
let nextPort = 0

/** A free TCP port on 127.0.0.1 for a server a test starts. */
export async function freePort(): Promise<number> {
  const span = PORT_BLOCK * PORT_BLOCKS
  const start = (process.pid % PORT_BLOCKS) * PORT_BLOCK
  while (nextPort < span) {
    const port = PORT_BASE + ((start + nextPort++) % span)
    if (handedOut.has(port)) continue
    if (await canListen(port)) {
      handedOut.add(port)
      return port
    }
  }
  throw new Error(`no free port left in ${PORT_BASE}-${PORT_BASE + span - 1}`)
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer()
    srv.unref()
    srv.once('error', () => resolve(false))
    srv.listen({port, host: '127.0.0.1', exclusive: true}, () => srv.close(() => resolve(true)))
  })
}

/**
 * Starts a server on a fresh free port, again on another one (3 tries) when the start fails with
 * "address already in use": a concurrent test can take a port between freePort() and the bind.
 */
export async function onFreePort<T>(start: (port: number) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start(await freePort())
    } catch (err) {
      if (attempt >= 3 || !/address already in use/i.test((err as Error).message)) throw err
    }
  }
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `rstore-${prefix}-`))
}

/** Finds a server binary or fails loudly: a test never silently skips a missing server. */
export function requireBinary(name: string, alternatives: string[] = []): string {
  for (const candidate of [name, ...alternatives]) {
    const found = spawnSync('sh', ['-c', `command -v ${candidate}`], {encoding: 'utf8'}).stdout.trim()
    if (found) return found
  }
  throw new Error(`'${name}' is not installed: run 'bash .ci/run' (or apt-get install it) before the tests`)
}

export interface Managed {
  child: ChildProcess
  /** Output collected so far (for error messages). */
  output(): string
  stop(signal?: NodeJS.Signals): Promise<void>
}

export function startProcess(cmd: string, args: string[], opts: {cwd?: string; env?: NodeJS.ProcessEnv} = {}): Managed {
  const child = spawn(cmd, args, {cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe']})
  children.add(child)
  let out = ''
  const keep = (d: Buffer) => {
    out += d.toString()
    if (out.length > 64_000) out = out.slice(-32_000)
  }
  child.stdout?.on('data', keep)
  child.stderr?.on('data', keep)
  child.on('exit', () => children.delete(child))
  return {
    child,
    output: () => out,
    stop: (signal: NodeJS.Signals = 'SIGTERM') =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve()
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
        child.once('exit', () => {
          clearTimeout(timer)
          resolve()
        })
        child.kill(signal)
      }),
  }
}

/**
 * Starts servers side by side; if one fails, the others are stopped before the error is thrown (a
 * server left running would keep the test process alive after its tests failed).
 */
export async function startAll<T extends readonly Promise<{stop(): Promise<void>}>[]>(starts: T): Promise<{-readonly [K in keyof T]: Awaited<T[K]>}> {
  const settled = await Promise.allSettled(starts)
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected')
  if (failed) {
    await Promise.all(settled.map((r) => (r.status === 'fulfilled' ? r.value.stop().catch(() => {}) : undefined)))
    throw failed.reason
  }
  return settled.map((r) => (r as PromiseFulfilledResult<unknown>).value) as {-readonly [K in keyof T]: Awaited<T[K]>}
}

/** Thrown by a waitFor check when waiting longer cannot help (the server process has exited). */
export class StopWaiting extends Error {}

/**
 * Runs a command to its end without blocking the event loop (unlike spawnSync, which would stall
 * every other server's readiness probe in this process while a database initializes).
 */
export function runToEnd(cmd: string, args: string[], opts: {cwd?: string} = {}): Promise<{status: number | null; stdout: string; stderr: string}> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe']})
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('error', reject)
    child.on('close', (status) => resolve({status, stdout, stderr}))
  })
}

/** Polls check() until it returns true or the deadline passes (or it throws StopWaiting). */
export async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 15000, everyMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let lastErr: unknown
  while (Date.now() < deadline) {
    try {
      if (await check()) return
    } catch (err) {
      if (err instanceof StopWaiting) throw err
      lastErr = err
    }
    await new Promise((r) => setTimeout(r, everyMs))
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? `: ${String(lastErr)}` : ''}`)
}

export function removeDir(dir: string): void {
  rmSync(dir, {recursive: true, force: true})
}
