import {existsSync, readFileSync} from 'node:fs'
import {resolve} from 'node:path'
import {ValidationError} from './errors.js'

/** Settings from config.ini (README "Configuration"); flags override them. */
export interface RstoreConfig {
  product: string
  coordinator: 'embedded' | 'etcd'
  coordinatorAddr: string
  dashboardAddr: string
  checkpointDir: string
  /** A file holding the password proxy clients must AUTH with (kept out of `ps`, unlike --proxy-auth). */
  proxyAuthFile?: string
  /** A file of dashboard API tokens (docs/dashboard.md "Auth"); kept out of `ps`, never a flag. */
  adminTokenFile?: string
  /** Dashboard reads (GET) need no token when true (docs/dashboard.md). Default false. */
  dashboardOpenReads?: boolean
}

export const DEFAULT_CONFIG: RstoreConfig = {
  product: 'test',
  coordinator: 'embedded',
  coordinatorAddr: './checkpoints/meta.db',
  dashboardAddr: '127.0.0.1:18087',
  checkpointDir: './checkpoints',
}

const KEYS: Record<string, keyof RstoreConfig> = {
  product: 'product',
  coordinator: 'coordinator',
  coordinator_addr: 'coordinatorAddr',
  dashboard_addr: 'dashboardAddr',
  checkpoint_dir: 'checkpointDir',
  proxy_auth_file: 'proxyAuthFile',
  admin_token_file: 'adminTokenFile',
  dashboard_open_reads: 'dashboardOpenReads',
}

/** Parses `key=value` lines; `#` and `;` start comments; unknown keys are an error (typos). */
export function parseIni(text: string, source: string): Partial<RstoreConfig> {
  const out: Partial<Record<keyof RstoreConfig, string>> = {}
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/\s[#;].*$/, '').trim()
    if (!line || line.startsWith('#') || line.startsWith(';') || line.startsWith('[')) return
    const eq = line.indexOf('=')
    if (eq < 0) throw new ValidationError(`${source}:${i + 1}: expected key=value, got '${raw.trim()}'`)
    const name = line.slice(0, eq).trim()
    const field = KEYS[name]
    if (!field) {
      throw new ValidationError(`${source}:${i + 1}: unknown setting '${name}' (known: ${Object.keys(KEYS).join(', ')})`)
    }
    out[field] = line.slice(eq + 1).trim()
  })
  return out as Partial<RstoreConfig>
}

/**
 * Loads the config: defaults, then the file (`-c FILE`, else ./config.ini if present), then overrides.
 * Relative paths in the file are taken relative to the file's folder.
 */
export function loadConfig(file: string | undefined, overrides: Partial<RstoreConfig> = {}): RstoreConfig {
  let fromFile: Partial<RstoreConfig> = {}
  let baseDir = process.cwd()
  const path = file ?? (existsSync('config.ini') ? 'config.ini' : undefined)
  if (path) {
    if (!existsSync(path)) throw new ValidationError(`config file '${path}' does not exist`)
    fromFile = parseIni(readFileSync(path, 'utf8'), path)
    baseDir = resolve(path, '..')
  }
  const cfg: RstoreConfig = {...DEFAULT_CONFIG, ...fromFile}
  for (const [k, v] of Object.entries(overrides)) if (v !== undefined) (cfg as unknown as Record<string, unknown>)[k] = v
  if (cfg.coordinator !== 'embedded' && cfg.coordinator !== 'etcd') {
    throw new ValidationError(`invalid coordinator '${cfg.coordinator}': use embedded or etcd`)
  }
  if (!/^[A-Za-z0-9_.-]+$/.test(cfg.product)) {
    throw new ValidationError(`invalid product '${cfg.product}': use letters, digits, '_', '-', '.'`)
  }
  if (cfg.coordinator === 'embedded' && cfg.coordinatorAddr.startsWith('http')) {
    cfg.coordinatorAddr = DEFAULT_CONFIG.coordinatorAddr
  }
  const rel = (p: string) => (fromFile && path && !p.startsWith('/') ? resolve(baseDir, p) : resolve(p))
  if (cfg.coordinator === 'embedded') cfg.coordinatorAddr = rel(cfg.coordinatorAddr)
  cfg.checkpointDir = rel(cfg.checkpointDir)
  if (cfg.proxyAuthFile) cfg.proxyAuthFile = rel(cfg.proxyAuthFile)
  if (cfg.adminTokenFile) cfg.adminTokenFile = rel(cfg.adminTokenFile)
  cfg.dashboardOpenReads = parseBool(cfg.dashboardOpenReads, 'dashboard_open_reads')
  return cfg
}

/** A boolean setting: true/false (the file gives text, an override may give a boolean). */
function parseBool(v: unknown, name: string): boolean {
  if (v === undefined || v === false || v === 'false') return false
  if (v === true || v === 'true') return true
  throw new ValidationError(`invalid ${name} '${String(v)}': use true or false`)
}

/**
 * The password proxy clients must AUTH with: `--proxy-auth` (visible in `ps`, so warned about), else
 * the RSTORE_PROXY_AUTH environment variable, else the file named by `proxy_auth_file`; none: no AUTH.
 */
export function proxyPassword(cfg: RstoreConfig, flag: string | undefined, warn: (line: string) => void, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (flag !== undefined) {
    warn('--proxy-auth shows the password to every user of this machine (ps); use RSTORE_PROXY_AUTH or proxy_auth_file in the config')
    if (!flag) throw new ValidationError('--proxy-auth is empty: give a password, or leave the flag out to run without AUTH')
    return flag
  }
  if (env.RSTORE_PROXY_AUTH) return env.RSTORE_PROXY_AUTH
  if (!cfg.proxyAuthFile) return undefined
  let text: string
  try {
    text = readFileSync(cfg.proxyAuthFile, 'utf8')
  } catch (err) {
    throw new ValidationError(`cannot read proxy_auth_file '${cfg.proxyAuthFile}': ${(err as Error).message}`)
  }
  const pass = text.replace(/\r?\n$/, '')
  if (!pass) throw new ValidationError(`proxy_auth_file '${cfg.proxyAuthFile}' is empty: put the clients' password in it`)
  return pass
}
