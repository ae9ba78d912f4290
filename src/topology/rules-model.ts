import {ValidationError} from '../errors.js'

/**
 * rstore's routing to SQL (docs/architecture.md, "SQL routing"): db units, db groups, shards and regex rules, as pure
 * data with validation and routing. Nothing here does I/O.
 *
 * Differences from the Go rstore, on purpose: rules are tried in `order` (ties by name), ranges are
 * half-open [start, end), ketama_hash works (fixed points per weight unit), read weights have no
 * off-by-one (weight 0 is never read), and the whole configuration is validated as one.
 */

export type UnitType = 'redis' | 'mysql' | 'postgres'
export type ReplicateMode = 'writeall' | 'writeone' | 'discard'
export type ShardType = 'hash' | 'mod' | 'range' | 'ketama_hash'
export type RefType = 'dbgroup' | 'shard'

export const UNIT_TYPES: readonly UnitType[] = ['redis', 'mysql', 'postgres']
export const REPLICATE_MODES: readonly ReplicateMode[] = ['writeall', 'writeone', 'discard']
export const SHARD_TYPES: readonly ShardType[] = ['hash', 'mod', 'range', 'ketama_hash']
export const REF_TYPES: readonly RefType[] = ['dbgroup', 'shard']

/** A database a db group can use: a Redis server, or a MySQL/MariaDB or PostgreSQL database. */
export interface DbUnit {
  name: string
  type: UnitType
  enable: boolean
  /** Redis: host (with port), unless url is given. */
  server?: string
  port?: number
  /** mysql://user:pass@host:port/db, postgres://..., or redis://host:port[/db]. */
  url?: string
  maxIdle: number
  maxOpen: number
  /** Seconds. */
  maxLifetime: number
  mark: string
}

export interface DbGroupItem {
  /** A db unit. */
  name: string
  isMaster: boolean
  /** Share of reads (0 = never read from this member). */
  readWeight: number
}

export interface DbGroup {
  name: string
  type: UnitType
  enable: boolean
  replicateMode: ReplicateMode
  items: DbGroupItem[]
  /** A redis db unit used as a read-through cache in front of the group (invalidated on write). */
  cache?: string
  mark: string
}

export interface ShardItem {
  refType: RefType
  refName: string
  /** range: "start-end" (half-open); mod: the remainder; ketama_hash: the weight (default 1); hash: unused. */
  shardStr: string
}

export interface Shard {
  name: string
  shardType: ShardType
  shardMap: ShardItem[]
  mark: string
}

export interface Rule {
  name: string
  /** Lower orders are tried first; ties by name. */
  order: number
  /** Must match the WHOLE key. */
  regexp: string
  /** Capture group whose text is the shard key; 0 = the whole key. */
  hashSlot: number
  shardName: string
  /** A key this rule must match and route; checked whenever the configuration is saved. */
  example: string
  mark: string
}

export interface RulesConfig {
  dbunits: DbUnit[]
  dbgroups: DbGroup[]
  shards: Shard[]
  rules: Rule[]
}

export type ConfigKind = 'dbunit' | 'dbgroup' | 'shard' | 'rule'
export const CONFIG_KINDS: readonly ConfigKind[] = ['dbunit', 'dbgroup', 'shard', 'rule']

export type RuleProblem =
  | 'bad-field'
  | 'bad-name'
  | 'duplicate'
  | 'bad-regex'
  | 'unknown-ref'
  | 'type-mismatch'
  | 'cycle'
  | 'range-overlap'
  | 'range-gap'
  | 'bad-shard-str'
  | 'example-mismatch'
  | 'example-unroutable'
  | 'no-master'
  | 'no-reader'

/** A configuration that must not be saved; `problem` says which rule of the schema it breaks. */
export class RuleConfigError extends ValidationError {
  constructor(
    readonly problem: RuleProblem,
    message: string,
  ) {
    super(message)
    this.name = 'RuleConfigError'
  }
}

/** A key matched a rule but cannot be routed (non-integer key for range/mod, out of every range, ...). */
export class RouteError extends ValidationError {
  constructor(message: string) {
    super(message)
    this.name = 'RouteError'
  }
}
