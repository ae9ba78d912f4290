import {mkdirSync} from 'node:fs'
import {join} from 'node:path'
import mysql from 'mysql2/promise'
import {onFreePort, removeDir, requireBinary, runToEnd, startProcess, tempDir, StopWaiting, waitFor, type Managed} from './process.js'

export interface MariaDbServer {
  host: string
  port: number
  dir: string
  socket: string
  /** mysql://rstore:rstore@127.0.0.1:<port>/rstore */
  url: string
  /** A URL for another (fresh) database on the same server. */
  createDatabase(name: string): Promise<string>
  /** Runs one statement as root over the unix socket. */
  sql(statement: string, params?: unknown[]): Promise<unknown>
  proc: Managed
  stop(): Promise<void>
}

/**
 * Starts a real mariadbd on a free loopback port in a temp dir (we run as root: --user=root), with a
 * database `rstore` and a user `rstore`/`rstore`. Durability is relaxed (tests and benchmarks only).
 */
export async function startMariaDb(extraArgs: string[] = []): Promise<MariaDbServer> {
  return onFreePort((port) => startMariaDbOn(port, extraArgs))
}

async function startMariaDbOn(port: number, extraArgs: string[]): Promise<MariaDbServer> {
  const bin = requireBinary('mariadbd', ['/usr/sbin/mariadbd', 'mysqld', '/usr/sbin/mysqld'])
  const install = requireBinary('mariadb-install-db', ['mysql_install_db'])
  const dir = tempDir('mariadb')
  const data = join(dir, 'data')
  const socket = join(dir, 'mysqld.sock')
  mkdirSync(data)
  const init = await runToEnd(install, ['--no-defaults', `--datadir=${data}`, '--user=root', '--auth-root-authentication-method=normal', '--skip-test-db'])
  if (init.status !== 0) throw new Error(`mariadb-install-db failed: ${init.stderr || init.stdout}`)
  const proc = startProcess(bin, [
    '--no-defaults', `--datadir=${data}`, '--user=root', `--port=${port}`, '--bind-address=127.0.0.1', `--socket=${socket}`,
    `--pid-file=${join(dir, 'mysqld.pid')}`, '--skip-log-bin', '--skip-name-resolve', '--innodb-flush-log-at-trx-commit=2',
    '--innodb-doublewrite=0', '--innodb-buffer-pool-size=256M', '--innodb-log-file-size=256M', '--max-connections=500',
    '--performance-schema=0', ...extraArgs,
  ])
  let root: mysql.Connection | undefined
  await waitFor(`mariadbd on port ${port}`, async () => {
    if (proc.child.exitCode !== null) throw new StopWaiting(`mariadbd exited: ${proc.output()}`)
    root = await mysql.createConnection({socketPath: socket, user: 'root'})
    return true
  }, 30000, 100).catch(async (e) => {
    await proc.stop('SIGKILL')
    removeDir(dir)
    // mariadbd says "Address already in use" when another server took the port first
    throw new Error(`${(e as Error).message}\n${proc.output()}`)
  })
  const sql = async (statement: string, params: unknown[] = []) => (await root!.query(statement, params))[0]
  await sql(`CREATE DATABASE rstore`)
  await sql(`CREATE USER 'rstore'@'%' IDENTIFIED BY 'rstore'`)
  await sql(`GRANT ALL PRIVILEGES ON *.* TO 'rstore'@'%'`)
  return {
    host: '127.0.0.1',
    port,
    dir,
    socket,
    url: `mysql://rstore:rstore@127.0.0.1:${port}/rstore`,
    async createDatabase(name: string) {
      await sql(`CREATE DATABASE \`${name}\``)
      return `mysql://rstore:rstore@127.0.0.1:${port}/${name}`
    },
    sql,
    proc,
    async stop() {
      await root?.end().catch(() => {})
      await proc.stop()
      removeDir(dir)
    },
  }
}
