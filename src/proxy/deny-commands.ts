import {ValidationError} from '../errors.js'
import {lookupCommand} from '../resp/commands.js'

/**
 * Reads `proxy start --deny-commands a,b,c`: the commands the proxy refuses to every client (Redis's
 * rename-command spirit, docs/proxy-fanout.md). A name the proxy does not know is refused at start.
 */
export function parseDenyCommands(text: string | undefined): string[] {
  if (text === undefined) return []
  const names = text.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean)
  if (names.length === 0) throw new ValidationError(`--deny-commands '${text}' names no command`)
  for (const n of names) {
    if (!lookupCommand(n)) throw new ValidationError(`--deny-commands: unknown command '${n}'`)
    if (n === 'auth' || n === 'hello' || n === 'quit') throw new ValidationError(`--deny-commands: '${n}' cannot be turned off`)
  }
  return [...new Set(names)]
}
