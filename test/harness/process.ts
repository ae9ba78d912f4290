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

/** A free TCP port on 127.0.0.1 (bind to 0, read the port, release it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as {port: number}).port
      srv.close(() => resolve(port))
    })
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

/** Polls check() until it returns true or the deadline passes. */
export async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 15000, everyMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let lastErr: unknown
  while (Date.now() < deadline) {
    try {
      if (await check()) return
    } catch (err) {
      lastErr = err
    }
    await new Promise((r) => setTimeout(r, everyMs))
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? `: ${String(lastErr)}` : ''}`)
}

export function removeDir(dir: string): void {
  rmSync(dir, {recursive: true, force: true})
}
