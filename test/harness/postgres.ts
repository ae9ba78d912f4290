import {spawnSync} from 'node:child_process'
import {chownSync, existsSync, mkdirSync} from 'node:fs'
import {join} from 'node:path'
import pg from 'pg'
import {onFreePort, removeDir, requireBinary, runToEnd, startProcess, tempDir, StopWaiting, waitFor, type Managed} from './process.js'

export interface PostgresServer {
  host: string
  port: number
  dir: string
  /** postgres://rstore:rstore@127.0.0.1:<port>/rstore */
  url: string
  createDatabase(name: string): Promise<string>
  /** Runs one statement as the superuser on the rstore database. */
  sql(statement: string, params?: unknown[]): Promise<pg.QueryResult>
  proc: Managed
  stop(): Promise<void>
}

function pgBinary(name: string): string {
  for (const v of ['17', '16', '15', '14', '13']) {
    const p = `/usr/lib/postgresql/${v}/bin/${name}`
    if (existsSync(p)) return p
  }
  return requireBinary(name)
}

/**
 * Starts a real PostgreSQL on a free loopback port in a temp dir. PostgreSQL refuses to run as root,
 * so when we are root initdb and postgres run as the `postgres` user (setpriv, or runuser) and the
 * dir is owned by it. The unix socket lives in the temp dir. Durability is relaxed (tests only).
 */
export async function startPostgres(extraArgs: string[] = []): Promise<PostgresServer> {
  return onFreePort((port) => startPostgresOn(port, extraArgs))
}

async function startPostgresOn(port: number, extraArgs: string[]): Promise<PostgresServer> {
  const initdb = pgBinary('initdb')
  const postgres = pgBinary('postgres')
  const dir = tempDir('postgres')
  const data = join(dir, 'data')
  mkdirSync(data)
  const asRoot = process.getuid?.() === 0
  let wrap: string[] = []
  if (asRoot) {
    const info = spawnSync('id', ['-u', 'postgres'], {encoding: 'utf8'})
    const gid = spawnSync('id', ['-g', 'postgres'], {encoding: 'utf8'})
    if (info.status !== 0) throw new Error(`running as root needs a 'postgres' user to run PostgreSQL (install postgresql)`)
    const uid = Number(info.stdout.trim())
    chownSync(dir, uid, Number(gid.stdout.trim()))
    chownSync(data, uid, Number(gid.stdout.trim()))
    const setpriv = spawnSync('sh', ['-c', 'command -v setpriv'], {encoding: 'utf8'}).stdout.trim()
    wrap = setpriv ? [setpriv, '--reuid=postgres', '--regid=postgres', '--init-groups', '--'] : [requireBinary('runuser', ['/usr/sbin/runuser']), '-u', 'postgres', '--']
  }
  const run = (bin: string, args: string[]) => (wrap.length ? [wrap[0], [...wrap.slice(1), bin, ...args]] : [bin, args]) as [string, string[]]
  const [icmd, iargs] = run(initdb, ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync', '--locale=C'])
  const init = await runToEnd(icmd, iargs, {cwd: dir})
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr || init.stdout}`)
  const [cmd, args] = run(postgres, [
    '-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off',
    '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', '-c', 'max_connections=300', '-c', 'shared_buffers=128MB',
    ...extraArgs,
  ])
  const proc = startProcess(cmd, args, {cwd: dir})
  // Over the unix socket in our own dir: on TCP another test's server could answer if it took the port.
  const admin = () => new pg.Client({host: dir, port, user: 'postgres', database: 'postgres'})
  await waitFor(`postgres on port ${port}`, async () => {
    if (proc.child.exitCode !== null) throw new StopWaiting(`postgres exited: ${proc.output()}`)
    const c = admin()
    try {
      await c.connect()
      await c.query('SELECT 1')
      return true
    } finally {
      await c.end().catch(() => {})
    }
  }, 30000, 100).catch(async (e) => {
    await proc.stop('SIGKILL')
    removeDir(dir)
    // postgres says "Address already in use" when another server took the port first
    throw new Error(`${(e as Error).message}\n${proc.output()}`)
  })
  const c = admin()
  await c.connect()
  await c.query(`CREATE USER rstore WITH SUPERUSER PASSWORD 'rstore'`)
  await c.query(`CREATE DATABASE rstore OWNER rstore`)
  const pool = new pg.Pool({host: '127.0.0.1', port, user: 'postgres', database: 'rstore', max: 2})
  pool.on('error', () => {})
  return {
    host: '127.0.0.1',
    port,
    dir,
    url: `postgres://rstore:rstore@127.0.0.1:${port}/rstore`,
    async createDatabase(name: string) {
      await c.query(`CREATE DATABASE "${name}" OWNER rstore`)
      return `postgres://rstore:rstore@127.0.0.1:${port}/${name}`
    },
    sql: (statement, params = []) => pool.query(statement, params),
    proc,
    async stop() {
      await c.end().catch(() => {})
      await pool.end().catch(() => {})
      await proc.stop()
      removeDir(dir)
    },
  }
}
