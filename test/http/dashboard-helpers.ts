/**
 * Starts `rstore dashboard` (the built CLI) as a child process on a cluster of test/harness/cluster.ts,
 * with a token file named by admin_token_file in a config.ini of the cluster's folder, and calls its API.
 */
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {RSTORE_BIN, type Cluster} from '../harness/cluster.js'
import {freePort, startProcess, StopWaiting, waitFor, type Managed} from '../harness/process.js'

export const ADMIN = 'admin-secret-0123456789'
export const READ = 'read-secret-0123456789'

export interface Dashboard {
  addr: string
  proc: Managed
  /** fetch on the API with a token (or none); the parsed JSON body. */
  call(method: string, path: string, opts?: {token?: string | null; body?: unknown; rawBody?: string}): Promise<{status: number; body: any}>
}

/** Writes config.ini (+ tokens.txt) into the cluster's folder; returns the config path. */
export function writeDashboardConfig(c: Cluster, extra = ''): string {
  writeFileSync(join(c.dir, 'tokens.txt'), `# dashboard tokens\nadmin:ops ${ADMIN}\nread:viewer ${READ}\n`)
  const cfg = join(c.dir, 'dash.ini')
  writeFileSync(cfg, `admin_token_file = tokens.txt\ncheckpoint_dir = ./checkpoints\n${extra}`)
  return cfg
}

/** Spawns a dashboard; wait: resolve once it listens (else right away, e.g. to see it refused). */
export async function spawnDashboard(c: Cluster, cfg: string, opts: {wait?: boolean; env?: NodeJS.ProcessEnv; port?: number; addrFlag?: boolean} = {}): Promise<Dashboard> {
  const port = opts.port ?? (await freePort())
  const addr = `127.0.0.1:${port}`
  const env = {...process.env, RSTORE_ADMIN_TOKEN: '', RSTORE_READ_TOKEN: '', ...opts.env}
  const proc = startProcess(process.execPath, [RSTORE_BIN, 'dashboard', '-c', cfg, ...(opts.addrFlag === false ? [] : ['--addr', addr]), '--lock-ttl', '2', ...c.coordinatorArgs], {cwd: c.dir, env})
  const d: Dashboard = {
    addr,
    proc,
    async call(method, path, o = {}) {
      const headers: Record<string, string> = {}
      const token = o.token === undefined ? ADMIN : o.token
      if (token) headers.authorization = `Bearer ${token}`
      let body: string | undefined
      if (o.rawBody !== undefined) body = o.rawBody
      else if (o.body !== undefined) body = JSON.stringify(o.body)
      if (body !== undefined) headers['content-type'] = 'application/json'
      const res = await fetch(`http://${addr}${path}`, {method, headers, body, signal: AbortSignal.timeout(15000)})
      const text = await res.text()
      return {status: res.status, body: text ? JSON.parse(text) : undefined}
    },
  }
  if (opts.wait ?? true) await waitListening(d)
  return d
}

export async function waitListening(d: Dashboard, timeoutMs = 20000): Promise<void> {
  await waitFor(
    `dashboard on ${d.addr} listening`,
    () => {
      if (d.proc.child.exitCode !== null) throw new StopWaiting(`dashboard exited with ${d.proc.child.exitCode}:\n${d.proc.output()}`)
      return d.proc.output().includes('listening on')
    },
    timeoutMs,
    50,
  )
}

/** Resolves with the exit code once the process has exited. */
export function exited(p: Managed): Promise<number | null> {
  if (p.child.exitCode !== null) return Promise.resolve(p.child.exitCode)
  return new Promise((resolve) => p.child.once('exit', (code) => resolve(code)))
}
