/**
 * How rstore authenticates to the group Redis servers, and over what (plain TCP or TLS). Every
 * connection to a group's server (proxy, mover, admin commands) takes its options from here.
 *
 * Two credentials (docs/security.md):
 * - admin (mover, `server`/`slot` admin commands): RSTORE_BACKEND_USER + RSTORE_BACKEND_PASSWORD, or the
 *   password read from the file RSTORE_BACKEND_PASSWORD_FILE (nothing on the command line, so nothing in `ps`).
 * - proxy: a Redis ACL user that cannot run FLUSHALL, SWAPDB, CONFIG, ... (not even from a script).
 *   `server add` creates it (user `rstore-proxy`, random password stored in the coordinator at
 *   /rstore/<product>/backend-auth/proxy); or the operator names an existing one with
 *   RSTORE_PROXY_BACKEND_USER + RSTORE_PROXY_BACKEND_PASSWORD(_FILE).
 * TLS: RSTORE_BACKEND_TLS=1 (or a rediss:// address in `server add`) for all servers of a product;
 * RSTORE_BACKEND_TLS_CA names the CA file that signs the servers' certificates.
 */
import {readFileSync} from 'node:fs'
import type {ConnectionOptions} from 'node:tls'
import {ValidationError} from '../errors.js'

export interface BackendSecurity {
  user?: string
  password?: string
  /** Set: connect with TLS. */
  tls?: ConnectionOptions
}

export const PROXY_ACL_USER = 'rstore-proxy'

function secret(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const file = env[`${name}_FILE`]
  if (file) {
    try {
      return readFileSync(file, 'utf8').replace(/\r?\n$/, '')
    } catch (err) {
      throw new ValidationError(`cannot read ${name}_FILE '${file}': ${(err as Error).message}`)
    }
  }
  return env[name] || undefined
}

/** TLS options from the environment, or undefined for plain TCP. */
export function tlsFromEnv(env: NodeJS.ProcessEnv = process.env): ConnectionOptions | undefined {
  const on = /^(1|yes|true|on)$/i.test(env.RSTORE_BACKEND_TLS ?? '') || !!env.RSTORE_BACKEND_TLS_CA
  if (!on) return undefined
  const opts: ConnectionOptions = {}
  if (env.RSTORE_BACKEND_TLS_CA) {
    try {
      opts.ca = readFileSync(env.RSTORE_BACKEND_TLS_CA)
    } catch (err) {
      throw new ValidationError(`cannot read RSTORE_BACKEND_TLS_CA '${env.RSTORE_BACKEND_TLS_CA}': ${(err as Error).message}`)
    }
  }
  return opts
}

/** The admin credential (mover and admin paths). */
export function adminSecurity(env: NodeJS.ProcessEnv = process.env): BackendSecurity {
  return {user: env.RSTORE_BACKEND_USER || undefined, password: secret(env, 'RSTORE_BACKEND_PASSWORD'), tls: tlsFromEnv(env)}
}

/** The proxy credential the operator named (an existing ACL user), if any. */
export function operatorProxyUser(env: NodeJS.ProcessEnv = process.env): {user: string; password?: string} | undefined {
  const user = env.RSTORE_PROXY_BACKEND_USER
  return user ? {user, password: secret(env, 'RSTORE_PROXY_BACKEND_PASSWORD')} : undefined
}

let processDefault: BackendSecurity | undefined

/** What a BackendConn made without explicit options uses: the proxy sets its ACL user here at start. */
export function defaultSecurity(): BackendSecurity {
  return (processDefault ??= adminSecurity())
}

export function setDefaultSecurity(sec: BackendSecurity): void {
  processDefault = sec
}

/** ioredis options for one server (host, port, credential, TLS). */
export function ioredisSecurity(sec: BackendSecurity): {username?: string; password?: string; tls?: ConnectionOptions} {
  const out: {username?: string; password?: string; tls?: ConnectionOptions} = {}
  if (sec.user) out.username = sec.user
  if (sec.password !== undefined) out.password = sec.password
  if (sec.tls) out.tls = sec.tls
  return out
}

/** The AUTH command for a credential, or undefined when there is no password. */
export function authArgs(sec: BackendSecurity): string[] | undefined {
  if (sec.password === undefined) return undefined
  return sec.user ? ['AUTH', sec.user, sec.password] : ['AUTH', sec.password]
}

/** `AUTH2 user pass` / `AUTH pass` for MIGRATE, so the source server can log in to the target. */
export function migrateAuthArgs(sec: BackendSecurity): string[] {
  if (sec.password === undefined) return []
  return sec.user ? ['AUTH2', sec.user, sec.password] : ['AUTH', sec.password]
}

/**
 * A server given to `server add` as host:port, redis://[user:pass@]host:port or rediss://...: the
 * address rstore records (host:port) and the credential/TLS to use for it (URL parts override env).
 */
export function parseServerUrl(text: string, base: BackendSecurity = adminSecurity()): {addr: string; security: BackendSecurity} {
  if (!/^rediss?:\/\//i.test(text)) return {addr: text, security: base}
  let u: URL
  try {
    u = new URL(text)
  } catch {
    throw new ValidationError(`invalid server URL '${redact(text)}': use redis://[user:pass@]host:port or rediss://...`)
  }
  if (!u.hostname || !u.port) throw new ValidationError(`invalid server URL '${redact(text)}': name host and port, e.g. redis://127.0.0.1:6379`)
  const tls = u.protocol === 'rediss:'
  if (tls && !base.tls) {
    throw new ValidationError(
      `'${redact(text)}' asks for TLS but RSTORE_BACKEND_TLS is not set: set RSTORE_BACKEND_TLS=1 (and RSTORE_BACKEND_TLS_CA) for this command, the proxies and the mover`,
    )
  }
  if (!tls && base.tls) throw new ValidationError(`'${redact(text)}' is plain redis:// but RSTORE_BACKEND_TLS is set: use rediss://`)
  const security: BackendSecurity = {...base}
  if (u.username) security.user = decodeURIComponent(u.username)
  if (u.password) security.password = decodeURIComponent(u.password)
  return {addr: `${u.hostname}:${u.port}`, security}
}

/** The URL without its password, for messages. */
export function redact(text: string): string {
  return text.replace(/^(rediss?:\/\/[^:@/]*):[^@/]*@/i, '$1:***@')
}
