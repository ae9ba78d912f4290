import {Args, Flags, type Command} from '@oclif/core'
import {withTopologyStore} from '../service/context.js'
import {addConfig, listConfig, removeConfig, showConfig, updateConfig, type ConfigObject} from '../service/rules-config.js'
import {ValidationError} from '../errors.js'
import type {ConfigKind, DbGroup, DbUnit, Rule, Shard} from '../topology/rules.js'
import {RstoreCommand} from './base-command.js'
import {table} from './table.js'

/**
 * The add/update/remove/list/show commands of the four rstore config kinds (dbunit, dbgroup, shard,
 * rule), built here so that each src/commands/<kind>/<action>.ts file is one line.
 */

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyFlags = Record<string, any>

const VALUE_FLAGS: Record<ConfigKind, AnyFlags> = {
  dbunit: {
    type: Flags.string({description: 'redis | mysql | postgres', options: ['redis', 'mysql', 'postgres']}),
    server: Flags.string({description: 'redis: host or host:port'}),
    port: Flags.integer({description: 'redis: port (default 6379)'}),
    url: Flags.string({description: 'mysql://user:pass@host:port/db, postgres://user:pass@host:port/db or redis://host:port'}),
    enable: Flags.boolean({description: 'in use (--no-enable to disable)', allowNo: true}),
    'max-idle': Flags.integer({description: 'idle connections kept (default 10)'}),
    'max-open': Flags.integer({description: 'open connections at most (default 10)'}),
    'max-lifetime': Flags.integer({description: 'seconds a connection lives (default 60)'}),
    mark: Flags.string({description: 'free-text note'}),
  },
  dbgroup: {
    type: Flags.string({description: 'redis | mysql | postgres (all items must be of this type)', options: ['redis', 'mysql', 'postgres']}),
    'replicate-mode': Flags.string({description: 'writeall (every master) | writeone (first master) | discard', options: ['writeall', 'writeone', 'discard']}),
    item: Flags.string({description: 'UNIT[:master|slave[:READWEIGHT]] (repeatable; default master, weight 1)', multiple: true}),
    cache: Flags.string({description: 'a redis dbunit used as read-through cache ("" = none)'}),
    enable: Flags.boolean({description: 'in use (--no-enable to disable)', allowNo: true}),
    mark: Flags.string({description: 'free-text note'}),
  },
  shard: {
    'shard-type': Flags.string({description: 'hash | mod | range | ketama_hash', options: ['hash', 'mod', 'range', 'ketama_hash']}),
    item: Flags.string({
      description: 'dbgroup:NAME[:SHARDSTR] or shard:NAME[:SHARDSTR] (repeatable). SHARDSTR: range "0-1000" (half-open), mod remainder "0", ketama weight',
      multiple: true,
    }),
    mark: Flags.string({description: 'free-text note'}),
  },
  rule: {
    order: Flags.integer({description: 'rules are tried by ascending order (ties by name)'}),
    regexp: Flags.string({description: 'regular expression the WHOLE key must match'}),
    'hash-slot': Flags.integer({description: 'capture group used as shard key (0 = whole key)'}),
    shard: Flags.string({description: 'the shard the rule routes to'}),
    example: Flags.string({description: 'a key this rule matches; routed when saved'}),
    mark: Flags.string({description: 'free-text note'}),
  },
}

const FIELD_OF_FLAG: Record<string, string> = {
  'max-idle': 'maxIdle',
  'max-open': 'maxOpen',
  'max-lifetime': 'maxLifetime',
  'replicate-mode': 'replicateMode',
  'shard-type': 'shardType',
  'hash-slot': 'hashSlot',
}

function parseItem(kind: ConfigKind, text: string): object {
  const parts = text.split(':')
  if (kind === 'dbgroup') {
    const [name, role = 'master', weight = '1'] = parts
    if (!name || parts.length > 3 || (role !== 'master' && role !== 'slave') || !/^\d+$/.test(weight)) {
      throw new ValidationError(`bad --item '${text}': use UNIT[:master|slave[:READWEIGHT]]`)
    }
    return {name, isMaster: role === 'master', readWeight: Number(weight)}
  }
  const [refType, refName, ...rest] = parts
  if ((refType !== 'dbgroup' && refType !== 'shard') || !refName) throw new ValidationError(`bad --item '${text}': use dbgroup:NAME[:SHARDSTR] or shard:NAME[:SHARDSTR]`)
  return {refType, refName, shardStr: rest.join(':')}
}

/** The object given on the command line: --json-value, then the field flags over it. */
function valueFromFlags(kind: ConfigKind, flags: AnyFlags, name: string | undefined): Record<string, unknown> {
  let v: Record<string, unknown> = {}
  if (flags['json-value'] !== undefined) {
    try {
      v = JSON.parse(flags['json-value'] as string)
    } catch (err) {
      throw new ValidationError(`--json-value is not JSON: ${(err as Error).message}`)
    }
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new ValidationError('--json-value must be a JSON object')
  }
  for (const flag of Object.keys(VALUE_FLAGS[kind])) {
    const given = flags[flag]
    if (given === undefined) continue
    if (flag === 'item') v[kind === 'dbgroup' ? 'items' : 'shardMap'] = (given as string[]).map((t) => parseItem(kind, t))
    else if (kind === 'rule' && flag === 'shard') v.shardName = given
    else v[FIELD_OF_FLAG[flag] ?? flag] = given
  }
  if (name !== undefined) {
    const inner = v.name ?? v.Name
    if (inner !== undefined && inner !== name) throw new ValidationError(`the name argument '${name}' differs from the name in --json-value '${String(inner)}'`)
    delete v.Name
    v.name = name
  }
  return v
}

const nameArg = (kind: ConfigKind) => ({name: Args.string({description: `${kind} name`, required: true})})
const jsonValueFlag = Flags.string({description: 'the whole object as JSON (field flags override its fields)'})

function summary(kind: ConfigKind, x: ConfigObject): (string | number | undefined)[] {
  switch (kind) {
    case 'dbunit': {
      const u = x as DbUnit
      return [u.name, u.type, u.enable ? 'yes' : 'no', u.url ? u.url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@') : `${u.server}:${u.port}`, `${u.maxIdle}/${u.maxOpen}/${u.maxLifetime}s`, u.mark]
    }
    case 'dbgroup': {
      const g = x as DbGroup
      return [g.name, g.type, g.enable ? 'yes' : 'no', g.replicateMode, g.items.map((i) => `${i.name}(${i.isMaster ? 'M' : 'S'},r${i.readWeight})`).join(' '), g.cache, g.mark]
    }
    case 'shard': {
      const s = x as Shard
      return [s.name, s.shardType, s.shardMap.map((i) => `${i.refType}:${i.refName}${i.shardStr ? `[${i.shardStr}]` : ''}`).join(' '), s.mark]
    }
    case 'rule': {
      const r = x as Rule
      return [r.order, r.name, r.regexp, r.hashSlot, r.shardName, r.example, r.mark]
    }
  }
}

const HEADERS: Record<ConfigKind, string[]> = {
  dbunit: ['NAME', 'TYPE', 'ENABLED', 'ADDRESS', 'POOL(idle/open/life)', 'MARK'],
  dbgroup: ['NAME', 'TYPE', 'ENABLED', 'REPLICATE', 'ITEMS', 'CACHE', 'MARK'],
  shard: ['NAME', 'TYPE', 'MAP', 'MARK'],
  rule: ['ORDER', 'NAME', 'REGEXP', 'HASHSLOT', 'SHARD', 'EXAMPLE', 'MARK'],
}

export function makeAddCommand(kind: ConfigKind): typeof Command {
  class Add extends RstoreCommand<typeof Add> {
    static override description = `Add a ${kind}. The whole resulting configuration is validated before it is saved${kind === 'rule' ? ' (the example is routed)' : ''}; proxies apply it live.`
    static override args = nameArg(kind)
    static override flags = {'json-value': jsonValueFlag, ...VALUE_FLAGS[kind]}
    public async run(): Promise<void> {
      const value = valueFromFlags(kind, this.flags as AnyFlags, this.args.name as string)
      const res = await withTopologyStore(this.cfg, (store) => addConfig(store, kind, value))
      this.output(res, () => `${kind} ${res.name} added, epoch ${res.epoch}`)
    }
  }
  return Add as unknown as typeof Command
}

export function makeUpdateCommand(kind: ConfigKind): typeof Command {
  class Update extends RstoreCommand<typeof Update> {
    static override description = `Update a ${kind}: the given fields replace the stored ones. The whole resulting configuration is validated before it is saved; proxies apply it live.`
    static override args = nameArg(kind)
    static override flags = {'json-value': jsonValueFlag, ...VALUE_FLAGS[kind]}
    public async run(): Promise<void> {
      const patch = valueFromFlags(kind, this.flags as AnyFlags, this.args.name as string)
      if (Object.keys(patch).length <= 1) throw new ValidationError(`nothing to update: give --json-value or field flags (see --help)`)
      const res = await withTopologyStore(this.cfg, (store) => updateConfig(store, kind, this.args.name as string, patch))
      this.output(res, () => `${kind} ${res.name} updated, epoch ${res.epoch}`)
    }
  }
  return Update as unknown as typeof Command
}

export function makeRemoveCommand(kind: ConfigKind): typeof Command {
  class Remove extends RstoreCommand<typeof Remove> {
    static override description = `Remove a ${kind} (refused while anything references it).`
    static override args = nameArg(kind)
    public async run(): Promise<void> {
      const res = await withTopologyStore(this.cfg, (store) => removeConfig(store, kind, this.args.name as string))
      this.output(res, () => `${kind} ${res.name} removed, epoch ${res.epoch}`)
    }
  }
  return Remove as unknown as typeof Command
}

export function makeListCommand(kind: ConfigKind): typeof Command {
  class List extends RstoreCommand<typeof List> {
    static override description = `List the ${kind}s${kind === 'rule' ? ' in the order they are tried' : ''}.`
    public async run(): Promise<void> {
      const res = await withTopologyStore(this.cfg, (store) => listConfig(store, kind))
      this.output(res, () => (res.items.length ? table(HEADERS[kind], res.items.map((x) => summary(kind, x))) : `no ${kind}s`))
    }
  }
  return List as unknown as typeof Command
}

export function makeShowCommand(kind: ConfigKind): typeof Command {
  class Show extends RstoreCommand<typeof Show> {
    static override description = `Show one ${kind} as stored, and what uses it.`
    static override args = nameArg(kind)
    public async run(): Promise<void> {
      const res = await withTopologyStore(this.cfg, (store) => showConfig(store, kind, this.args.name as string))
      this.output(res, () => `${JSON.stringify(res.item, null, 2)}\nused by: ${res.usedBy.length ? res.usedBy.join(', ') : '-'}`)
    }
  }
  return Show as unknown as typeof Command
}
