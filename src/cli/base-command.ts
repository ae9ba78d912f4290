import {Command, Flags, type Interfaces} from '@oclif/core'
import {loadConfig, type RstoreConfig} from '../config.js'
import {dispositionOf, errorLine, RstoreError} from '../errors.js'

/**
 * Shared flags and error handling for every rstore command: config loading (-c, overrides), --json,
 * and one readable line plus a non-zero exit code for any error the user can fix.
 */
export abstract class RstoreCommand<T extends typeof Command> extends Command {
  static override baseFlags = {
    config: Flags.string({char: 'c', description: 'config file (default: ./config.ini if present)', helpGroup: 'GLOBAL'}),
    product: Flags.string({description: 'product name (namespace); overrides the config file', helpGroup: 'GLOBAL'}),
    coordinator: Flags.string({description: 'embedded | etcd; overrides the config file', options: ['embedded', 'etcd'], helpGroup: 'GLOBAL'}),
    'coordinator-addr': Flags.string({description: 'SQLite file (embedded) or etcd endpoints (http://h:p,...)', helpGroup: 'GLOBAL'}),
    'checkpoint-dir': Flags.string({description: 'folder of the SQLite checkpoint files', helpGroup: 'GLOBAL'}),
    json: Flags.boolean({description: 'print machine-readable JSON', default: false, helpGroup: 'GLOBAL'}),
  }

  protected flags!: Interfaces.InferredFlags<(typeof RstoreCommand)['baseFlags'] & T['flags']>
  protected args!: Interfaces.InferredArgs<T['args']>
  protected cfg!: RstoreConfig

  public override async init(): Promise<void> {
    await super.init()
    const {args, flags} = await this.parse({
      flags: this.ctor.flags,
      baseFlags: (super.ctor as typeof RstoreCommand).baseFlags,
      args: this.ctor.args,
      strict: this.ctor.strict,
    })
    this.flags = flags as typeof this.flags
    this.args = args as typeof this.args
    this.cfg = loadConfig(flags.config, {
      product: flags.product,
      coordinator: flags.coordinator as RstoreConfig['coordinator'] | undefined,
      coordinatorAddr: flags['coordinator-addr'],
      checkpointDir: flags['checkpoint-dir'],
    })
  }

  /** Prints a value as JSON with --json, else the human text. */
  protected output(json: unknown, human: () => string): void {
    if (this.flags.json) this.log(JSON.stringify(json, null, 2))
    else this.log(human())
  }

  protected override async catch(err: Error & {exitCode?: number; oclif?: {exit?: number}}): Promise<unknown> {
    if (err instanceof RstoreError) {
      process.stderr.write(`Error: ${oneLineText(errorLine(err))}\n`)
      process.exitCode = err.exitCode
      return
    }
    // oclif's own parse errors (unknown flag, missing arg) keep their message; make it one line.
    if (err.oclif?.exit !== undefined && err.oclif.exit !== 0 && !(err as {code?: string}).code?.startsWith('EEXIT')) {
      process.stderr.write(`Error: ${oneLine(err.message)}\n`)
      process.exitCode = dispositionOf('EUSAGE').exit
      return
    }
    return super.catch(err)
  }
}

/**
 * oclif's parse errors span lines ("Missing 2 required args:\ngroup  desc\nstatus  desc\nSee more help
 * with --help"): one line that names what is missing.
 */
function oneLine(message: string): string {
  const lines = message.split('\n').map((l) => l.trim()).filter((l) => l && !/^See more help with --help$/.test(l))
  const first = lines[0] ?? message
  const rest = lines.slice(1).map((l) => l.split(/\s+/)[0])
  return `${first.endsWith(':') ? `${first} ${rest.join(', ')}` : first} (see --help)`
}

/** An error's text on one line (a message quoting a multi-line server reply stays one line). */
function oneLineText(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ')
}
