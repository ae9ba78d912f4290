import {loadRulesConfig, parseRulesConfig} from '../coord/rules-store.js'
import type {TopologyStore} from '../coord/topology-store.js'
import type {KeyValue} from '../coord/types.js'
import {isActive, validateCutovers, type Cutover, type CutoverStep} from '../topology/cutover.js'
import {compileRules, RouteError, type CompiledRules, type DbGroup, type RoutePath, type RulesConfig} from '../topology/rules.js'

/** Where the proxy sends a key: the slot table (no rules), a db group, or nowhere (refused). */
export type RuleRoute =
  | {kind: 'slot'}
  | {
      kind: 'dbgroup'
      group: DbGroup
      path: RoutePath
      /** A unit to read from, chosen by readWeight among enabled members (undefined: none readable). */
      readUnit(): string | undefined
      /** The units a write goes to, by replicate mode (empty for discard). */
      writeUnits(): string[]
      /** Set while the key's rule is being cut over to another db group (double-write). */
      cutover?: CutoverRoute
    }
  | {kind: 'unregistered'; error: string}

export interface CutoverRoute {
  name: string
  step: CutoverStep
  /** Writes wait for the next configuration (the answering side is changing). */
  hold: boolean
  to: DbGroup
  toReadUnit(): string | undefined
  toWriteUnits(): string[]
}

export const KEY_NOT_REGISTERED = 'ERR key not registered'

/**
 * The proxy's view of the rules, rebuilt on every epoch (config changes bump the epoch). A product
 * "requires rules" as soon as one rule exists: then every key must match one (else
 * `-ERR key not registered`); with no rules every key goes to the slot table as before.
 */
export class RuleRouter {
  /** Active cutovers by rule name. */
  private readonly cutovers = new Map<string, Cutover>()
  /** What fromKvs read this router from (parseRulesConfig's source), if it did. */
  private source?: string

  constructor(
    readonly rules: CompiledRules,
    readonly epoch = 0,
    cutovers: Cutover[] = [],
  ) {
    validateCutovers(rules, cutovers)
    for (const c of cutovers) if (isActive(c)) this.cutovers.set(c.rule, c)
  }

  /** Validates and compiles a configuration (throws RuleConfigError; keep serving the previous router then). */
  static fromConfig(config: RulesConfig, epoch = 0, cutovers: Cutover[] = []): RuleRouter {
    return new RuleRouter(compileRules(config), epoch, cutovers)
  }

  /** Loads the product's configuration (and cutovers) from the coordinator. */
  static async load(store: TopologyStore): Promise<RuleRouter> {
    const {config, epoch, cutovers} = await loadRulesConfig(store)
    return RuleRouter.fromConfig(config, epoch, cutovers)
  }

  /**
   * The configuration (and cutovers) in the keys of one list() of the product prefix (a proxy's).
   * When they are stored exactly as previous's were (the usual case: an epoch that only moved slots),
   * previous's compiled rules are reused instead of compiled again.
   */
  static fromKvs(store: TopologyStore, kvs: KeyValue[], previous?: RuleRouter): RuleRouter {
    const {config, epoch, cutovers, source} = parseRulesConfig(store, kvs)
    const router = previous?.source === source ? new RuleRouter(previous.rules, epoch, cutovers) : RuleRouter.fromConfig(config, epoch, cutovers)
    router.source = source
    return router
  }

  static empty(): RuleRouter {
    return RuleRouter.fromConfig({dbunits: [], dbgroups: [], shards: [], rules: []})
  }

  get requiresRules(): boolean {
    return this.rules.requiresRules
  }

  /** An active cutover by name (undefined once finished or aborted). */
  activeCutover(name: string): Cutover | undefined {
    for (const c of this.cutovers.values()) if (c.name === name) return c
    return undefined
  }

  route(key: Buffer): RuleRoute {
    if (!this.rules.requiresRules) return {kind: 'slot'}
    let path: RoutePath | undefined
    try {
      path = this.rules.route(key)
    } catch (err) {
      if (err instanceof RouteError) return {kind: 'unregistered', error: `ERR key not routable: ${err.message}`}
      throw err
    }
    if (!path) return {kind: 'unregistered', error: KEY_NOT_REGISTERED}
    const group = this.rules.groups.get(path.dbgroup)!
    const rules = this.rules
    const res: RuleRoute = {
      kind: 'dbgroup',
      group,
      path,
      readUnit: () => rules.readUnit(group.name),
      writeUnits: () => rules.writeUnits(group.name),
    }
    const c = this.cutovers.get(path.rule)
    if (c && c.to !== group.name) {
      const to = rules.groups.get(c.to)!
      res.cutover = {name: c.name, step: c.step, hold: c.hold === true, to, toReadUnit: () => rules.readUnit(to.name), toWriteUnits: () => rules.writeUnits(to.name)}
    }
    return res
  }
}
