/**
 * The one owner of rstore's coordinator key layout: every key and prefix rstore writes or reads
 * lives under `/rstore/<product>/` and is built here (README.md "Coordinator data model", which
 * test/coord-layout.test.ts checks against keyPatterns()).
 */
import type {ConfigKind, RulesConfig} from '../topology/rules.js'

/** The coordinator key prefix of a product: everything lives below it. */
export function productPrefix(product: string): string {
  return `/rstore/${product}/`
}

/** The folder of each routing config kind (also the RulesConfig field it loads into). */
export const CONFIG_DIRS: Readonly<Record<ConfigKind, keyof RulesConfig>> = {dbunit: 'dbunits', dbgroup: 'dbgroups', shard: 'shards', rule: 'rules'}

/** The keys of one product. */
export class KeyLayout {
  readonly prefix: string
  readonly slotsPrefix: string
  readonly groupsPrefix: string
  readonly proxiesPrefix: string
  readonly proxyControlPrefix: string
  readonly cutoversPrefix: string
  /** Topology version; bumped in the same txn as every routing (and rules config) change. */
  readonly epoch: string
  /** The running data-moving job, bound to its lease. */
  readonly migrationLock: string
  /** The HA agents' leader (docs/agent.md "Leader election"), bound to its lease. */
  readonly agentLeader: string
  /** The live HA agents, one key each, bound to the agent's lease (docs/agent.md "Confirmation"). */
  readonly agentsPrefix: string
  /** The running job's progress numbers (the proxies' /metrics), bound to the lock's lease. */
  readonly migrationProgress: string
  /** The proxy ACL user `server add` created (docs/security.md). */
  readonly proxyCredential: string
  /** The one active `rstore dashboard`, bound to its lease (docs/dashboard.md). */
  readonly dashboardLock: string
  /** The dashboard's audit log, one key per mutating call, bounded (docs/dashboard.md). */
  readonly auditPrefix: string

  constructor(readonly product: string) {
    this.prefix = productPrefix(product)
    this.slotsPrefix = this.prefix + 'slots/'
    this.groupsPrefix = this.prefix + 'groups/'
    this.proxiesPrefix = this.prefix + 'proxies/'
    this.proxyControlPrefix = this.prefix + 'proxyctl/'
    this.cutoversPrefix = this.prefix + 'cutovers/'
    this.epoch = this.prefix + 'epoch'
    this.migrationLock = this.prefix + 'locks/migration'
    this.migrationProgress = this.prefix + 'progress/migration'
    this.agentLeader = this.prefix + 'locks/agent-leader'
    this.agentsPrefix = this.prefix + 'agents/'
    this.proxyCredential = this.prefix + 'backend-auth/proxy'
    this.dashboardLock = this.prefix + 'locks/dashboard'
    this.auditPrefix = this.prefix + 'audit/'
  }

  slot(id: number | string): string {
    return this.slotsPrefix + id
  }

  group(id: number | string): string {
    return this.groupsPrefix + id
  }

  /** A registered proxy's record, bound to its lease. */
  proxy(id: string): string {
    return this.proxiesPrefix + id
  }

  /** A live HA agent's record `{id, host, pid, httpAddr, since}`. */
  agent(id: string): string {
    return this.agentsPrefix + id
  }

  /** The desired online/offline state of a proxy (shared by the workers of `--cpu N`). */
  proxyControl(id: string): string {
    return this.proxyControlPrefix + id
  }

  configPrefix(kind: ConfigKind): string {
    return `${this.prefix}${CONFIG_DIRS[kind]}/`
  }

  config(kind: ConfigKind, name: string): string {
    return this.configPrefix(kind) + name
  }

  /** An audit entry; ids sort in time order (docs/dashboard.md). */
  audit(id: string): string {
    return this.auditPrefix + id
  }

  cutover(name: string): string {
    return this.cutoversPrefix + name
  }

  /** The slot id of a `slots/<id>` key; undefined for any other key or a bad id. */
  parseSlot(key: string): number | undefined {
    return parseId(key, this.slotsPrefix)
  }

  /** The group id of a `groups/<id>` key; undefined for any other key or a bad id. */
  parseGroup(key: string): number | undefined {
    return parseId(key, this.groupsPrefix)
  }
}

function parseId(key: string, prefix: string): number | undefined {
  if (!key.startsWith(prefix)) return undefined
  const id = Number(key.slice(prefix.length))
  return Number.isInteger(id) ? id : undefined
}

/** What `locks/migration` holds: the job and the process that runs it. */
export interface MigrationLockHolder {
  job: string
  host: string
  pid: number
  startedAt: number
}

/** The holder stored in `locks/migration`; undefined when the value is not JSON. */
export function parseMigrationLock(value: string): Partial<MigrationLockHolder> | undefined {
  try {
    return JSON.parse(value) as Partial<MigrationLockHolder>
  } catch {
    return undefined
  }
}

/** Every key pattern of the layout, relative to the product prefix (`<id>`, `<name>`: a variable part). */
export function keyPatterns(): string[] {
  const l = new KeyLayout('<product>')
  const keys = [
    l.slot('<id>'),
    l.group('<id>'),
    l.epoch,
    l.proxy('<id>'),
    l.proxyControl('<id>'),
    l.migrationLock,
    l.migrationProgress,
    l.agentLeader,
    l.agent('<id>'),
    ...(Object.keys(CONFIG_DIRS) as ConfigKind[]).map((k) => l.config(k, '<name>')),
    l.cutover('<name>'),
    l.proxyCredential,
    l.dashboardLock,
    l.audit('<id>'),
  ]
  return keys.map((k) => k.slice(l.prefix.length))
}
