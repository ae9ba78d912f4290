import {Args, Flags} from '@oclif/core'
import {RstoreCommand} from '../cli/base-command.js'
import {ValidationError} from '../errors.js'
import {moveFlags, moveOptions, runJobCommand, summaryText} from '../cli/migrate-support.js'
import type {JobRequest} from '../migrate/job.js'

export default class Migrate extends RstoreCommand<typeof Migrate> {
  static override description = `Move slots FROM..TO, with their keys, to GROUP while proxies keep serving.
One slot migrates at a time; every proxy acknowledges each change (the barrier) before a key moves or a
slot is called done. The job is checkpointed: after Ctrl-C, kill -9 or a barrier timeout, the same
command (or --resume) finishes it, the interrupted slot first. 'rstore jobs' shows its progress and
pauses, resumes or cancels it from another shell.`

  static override examples = [
    '<%= config.bin %> migrate 0 511 2',
    '<%= config.bin %> migrate 0 511 2 --delay=10',
    '<%= config.bin %> migrate 0 1023 3 --rate 20000 --barrier-timeout 30',
    '<%= config.bin %> migrate --resume',
  ]

  static override args = {
    from: Args.string({description: 'first slot (0..1023)'}),
    to: Args.string({description: 'last slot (0..1023)'}),
    group: Args.string({description: 'target group id'}),
  }

  static override flags = {
    ...moveFlags,
    resume: Flags.boolean({description: 'continue the unfinished migration job (no arguments needed)', default: false}),
  }

  async run(): Promise<void> {
    const {from, to, group} = this.args
    let req: JobRequest
    if (from === undefined) {
      if (!this.flags.resume) throw new ValidationError("give FROM TO GROUP (e.g. 'rstore migrate 0 511 2'), or --resume to continue the unfinished job")
      req = {kind: 'resume'}
    } else {
      if (to === undefined || group === undefined) throw new ValidationError("give FROM TO GROUP, e.g. 'rstore migrate 0 511 2'")
      req = {kind: 'migrate', from, to, group}
    }
    const summary = await runJobCommand(this.cfg, req, moveOptions(this.flags), {json: this.flags.json, write: (l) => this.logToStderr(l)})
    this.output(summary, () => summaryText(summary))
  }
}
