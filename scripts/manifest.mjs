// Writes oclif.manifest.json so the CLI loads only the command it runs (not every command file and
// every driver behind them): about 0.8 s less per call.
import {Plugin} from '@oclif/core'
import {writeFileSync} from 'node:fs'
import {fileURLToPath} from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const plugin = new Plugin({root, type: 'core', ignoreManifest: true, errorOnManifestCreate: true})
await plugin.load()
const manifest = plugin.manifest
if (!Object.keys(manifest.commands).length) throw new Error('no commands found for the manifest')
writeFileSync(`${root}/oclif.manifest.json`, JSON.stringify(manifest))
console.log(`oclif.manifest.json: ${Object.keys(manifest.commands).length} commands`)
