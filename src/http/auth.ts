/**
 * The dashboard's bearer tokens (docs/dashboard.md "Auth"): an admin token may call everything, a
 * read token only GET. Tokens come from RSTORE_ADMIN_TOKEN / RSTORE_READ_TOKEN or from the file named
 * by `admin_token_file`, never from a command-line value (it would show in `ps`).
 */
import {timingSafeEqual} from 'node:crypto'
import {readFileSync} from 'node:fs'
import type {RstoreConfig} from '../config.js'
import {ValidationError} from '../errors.js'
import {HttpError} from './errors.js'

export type TokenRole = 'admin' | 'read'

export interface Token {
  /** Shown in the audit log instead of the secret. */
  name: string
  role: TokenRole
  secret: string
}

/**
 * Parses a token file: one token per line, `admin[:name] <secret>` or `read[:name] <secret>`; a line
 * that is only a secret is an admin token named "admin". `#` starts a comment.
 */
export function parseTokenFile(text: string, source: string): Token[] {
  const out: Token[] = []
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim()
    if (!line || line.startsWith('#')) return
    const parts = line.split(/\s+/)
    let role: string = 'admin'
    let name = 'admin'
    let secret = parts[0]!
    if (parts.length === 2) {
      const [r, n] = parts[0]!.split(':', 2)
      role = r!
      name = n || r!
      secret = parts[1]!
    } else if (parts.length > 2) {
      throw new ValidationError(`${source}:${i + 1}: expected 'admin[:name] <token>' or 'read[:name] <token>'`)
    }
    if (role !== 'admin' && role !== 'read') throw new ValidationError(`${source}:${i + 1}: unknown token role '${role}': use admin or read`)
    if (secret.length < 8) throw new ValidationError(`${source}:${i + 1}: token '${name}' is shorter than 8 characters`)
    out.push({name, role, secret})
  })
  return out
}

/** Every configured token; none at all is an error (the API would be closed to everybody). */
export function loadTokens(cfg: RstoreConfig, env: NodeJS.ProcessEnv = process.env): Token[] {
  const tokens: Token[] = []
  if (env.RSTORE_ADMIN_TOKEN) tokens.push({name: 'env-admin', role: 'admin', secret: env.RSTORE_ADMIN_TOKEN})
  if (env.RSTORE_READ_TOKEN) tokens.push({name: 'env-read', role: 'read', secret: env.RSTORE_READ_TOKEN})
  if (cfg.adminTokenFile) {
    let text: string
    try {
      text = readFileSync(cfg.adminTokenFile, 'utf8')
    } catch (err) {
      throw new ValidationError(`cannot read admin_token_file '${cfg.adminTokenFile}': ${(err as Error).message}`)
    }
    tokens.push(...parseTokenFile(text, cfg.adminTokenFile))
  }
  if (!tokens.some((t) => t.role === 'admin')) {
    throw new ValidationError('the dashboard has no admin token', 'set RSTORE_ADMIN_TOKEN or put one in the file named by admin_token_file in config.ini')
  }
  return tokens
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

/** The configured token a request's `Authorization: Bearer` header names, if any (no check of its role). */
export function identify(tokens: Token[], header: string | undefined): Token | undefined {
  const m = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null
  return m ? tokens.find((t) => same(t.secret, m[1]!)) : undefined
}

/**
 * Throws the refusal of a request, if any: 401 without a valid token (unless reads are open and it
 * sent none), 403 for a read token on a mutating call.
 */
export function authorize(token: Token | undefined, header: string | undefined, mutating: boolean, openReads: boolean): void {
  if (!header) {
    if (!mutating && openReads) return
    throw new HttpError(401, 'EAUTH', 'this call needs a token: send Authorization: Bearer <token>')
  }
  if (!token) throw new HttpError(401, 'EAUTH', 'the token is not valid', 'use a token from admin_token_file or RSTORE_ADMIN_TOKEN / RSTORE_READ_TOKEN')
  if (mutating && token.role !== 'admin') throw new HttpError(403, 'EFORBIDDEN', `token '${token.name}' is read-only: this call changes state and needs an admin token`)
}
