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
  /** The `[agent]` section: what `rstore agent start` supervises on this host (docs/agent.md). */
  agent?: AgentConfig
}

/** One supervised process: its name (from `process.<name>`) and its command line split into argv. */
export interface AgentProcessSpec {
  name: string
  argv: string[]
}

/** The `[agent]` section of config.ini (docs/agent.md "Config"). */
export interface AgentConfig {
  /** The agent's own pidfile (`rstore agent stop` reads it); each process's is `<name>.pid` beside it. */
  pidfile: string
  /** Each process's stdout and stderr go to `<log_dir>/<name>.log` (appended). */
  logDir: string
  /** The first restart delay; doubled after each quick exit up to backoffMaxMs. */
  backoffMs: number
  backoffMaxMs: number
  /** A process that ran this long before exiting restarts after backoffMs again (it was not crash-looping). */
  stableAfterMs: number
  processes: AgentProcessSpec[]
}

export const DEFAULT_AGENT: Omit<AgentConfig, 'processes'> = {
  pidfile: './run/agent.pid',
  logDir: './logs',
  backoffMs: 200,
  backoffMaxMs: 30_000,
  stableAfterMs: 10_000,
}

const AGENT_KEYS: Record<string, 'pidfile' | 'logDir' | 'backoffMs' | 'backoffMaxMs' | 'stableAfterMs'> = {
  pidfile: 'pidfile',
  log_dir: 'logDir',
  backoff_ms: 'backoffMs',
  backoff_max_ms: 'backoffMaxMs',
  stable_after_ms: 'stableAfterMs',
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

/**
 * Parses `key=value` lines; `#` and `;` start comments; unknown keys are an error (typos). Lines after
 * an `[agent]` header are the agent's settings (parseAgentLine); any other header is ignored.
 */
export function parseIni(text: string, source: string): Partial<RstoreConfig> {
  const out: Partial<Record<keyof RstoreConfig, string>> = {}
  let agent: AgentConfig | undefined
  let inAgent = false
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/\s[#;].*$/, '').trim()
    if (!line || line.startsWith('#') || line.startsWith(';')) return
    if (line.startsWith('[')) {
      inAgent = line === '[agent]'
      if (inAgent) agent ??= {...DEFAULT_AGENT, processes: []}
      return
    }
    const eq = line.indexOf('=')
    if (eq < 0) throw new ValidationError(`${source}:${i + 1}: expected key=value, got '${raw.trim()}'`)
    if (inAgent && agent) return parseAgentLine(agent, line.slice(0, eq).trim(), line.slice(eq + 1).trim(), `${source}:${i + 1}`)
    const name = line.slice(0, eq).trim()
    const field = KEYS[name]
    if (!field) {
      throw new ValidationError(`${source}:${i + 1}: unknown setting '${name}' (known: ${Object.keys(KEYS).join(', ')})`)
    }
    out[field] = line.slice(eq + 1).trim()
  })
  const cfg = out as Partial<RstoreConfig>
  if (agent) cfg.agent = agent
  return cfg
}

/** One `[agent]` line: a setting, or `process.<name> = <command line>`. */
function parseAgentLine(agent: AgentConfig, name: string, value: string, where: string): void {
  if (name.startsWith('process.')) {
    const proc = name.slice('process.'.length)
    if (!/^[A-Za-z0-9_-]+$/.test(proc)) throw new ValidationError(`${where}: invalid process name '${proc}': use letters, digits, '_', '-'`)
    if (agent.processes.some((p) => p.name === proc)) throw new ValidationError(`${where}: process '${proc}' is declared twice`)
    const argv = splitCommandLine(value, where)
    if (!argv.length) throw new ValidationError(`${where}: process '${proc}' has an empty command line`)
    agent.processes.push({name: proc, argv})
    return
  }
  const field = AGENT_KEYS[name]
  if (!field) throw new ValidationError(`${where}: unknown [agent] setting '${name}' (known: ${Object.keys(AGENT_KEYS).join(', ')}, process.<name>)`)
  if (field === 'pidfile' || field === 'logDir') {
    if (!value) throw new ValidationError(`${where}: ${name} is empty`)
    agent[field] = value
    return
  }
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1 || n > 3_600_000) throw new ValidationError(`${where}: ${name} must be a whole number of ms from 1 to 3600000, got '${value}'`)
  agent[field] = n
}

/**
 * Splits a command line into argv like a shell would for plain words: whitespace separates,
 * '...' and "..." quote (no expansion, no escapes but \" and \\ inside double quotes).
 */
export function splitCommandLine(text: string, where: string): string[] {
  const out: string[] = []
  let cur = ''
  let inWord = false
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!
    if (c === "'" || c === '"') {
      const end = findQuoteEnd(text, i, c)
      if (end < 0) throw new ValidationError(`${where}: unterminated ${c} in '${text}'`)
      const body = text.slice(i + 1, end)
      cur += c === '"' ? body.replace(/\\(["\\])/g, '$1') : body
      inWord = true
      i = end
    } else if (/\s/.test(c)) {
      if (inWord) out.push(cur)
      cur = ''
      inWord = false
    } else {
      cur += c
      inWord = true
    }
  }
  if (inWord) out.push(cur)
  return out
}

function findQuoteEnd(text: string, start: number, quote: string): number {
  for (let i = start + 1; i < text.length; i++) {
    if (quote === '"' && text[i] === '\\') i++
    else if (text[i] === quote) return i
  }
  return -1
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
  if (cfg.agent) cfg.agent = {...cfg.agent, pidfile: rel(cfg.agent.pidfile), logDir: rel(cfg.agent.logDir)}
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
