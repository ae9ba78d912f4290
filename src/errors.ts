/**
 * Typed errors. Every error the user can cause carries a code, a message that says what was wrong,
 * and (optionally) a hint saying how to fix it. The front-ends render them: the CLI prints one line
 * and exits with the code's exit status, the HTTP API answers `{error: {code, message, hint}}` with
 * the code's HTTP status. ERROR_TABLE is the one place both are decided (docs/architecture.md).
 */

/** What a front-end does with an error code: the CLI's exit status and the HTTP API's status. */
export interface ErrorDisposition {
  exit: number
  http: number
  /** One line for the docs: when the code is raised. */
  meaning: string
}

export const ERROR_TABLE = {
  EINVAL: {exit: 1, http: 400, meaning: 'malformed or out-of-range input (bad slot, address, regex, flag value)'},
  ENOTFOUND: {exit: 1, http: 404, meaning: 'something named does not exist (group, server, proxy, job, config object)'},
  ECONFLICT: {exit: 1, http: 409, meaning: 'refused because of the current state (a second migration, a migrating slot, a second master)'},
  EMIGRATE: {exit: 1, http: 409, meaning: 'a migration step was refused or failed; the job stays resumable'},
  EBACKFILL: {exit: 1, http: 409, meaning: 'a backfill was refused or failed; it stays resumable'},
  EVERIFY: {exit: 2, http: 503, meaning: 'verify could not compare (a side unreachable or unreadable)'},
  EBARRIER: {exit: 3, http: 503, meaning: 'a proxy did not acknowledge a slot change within --barrier-timeout; the job stays resumable'},
  ELOCKLOST: {exit: 1, http: 503, meaning: "the job's coordinator lease expired; it stopped before changing anything more and stays resumable"},
  ESTOPPED: {exit: 130, http: 409, meaning: 'stopped on request (Ctrl-C, SIGTERM, jobs pause); the job is paused and resumable'},
  ETIMEOUT: {exit: 1, http: 503, meaning: 'a proxy or server did not answer in time'},
  EUNREACHABLE: {exit: 1, http: 503, meaning: 'a server or the coordinator could not be reached'},
  ECORRUPT: {exit: 1, http: 500, meaning: 'a stored record cannot be read (written by something else or a newer version)'},
  ECOMPACTED: {exit: 1, http: 503, meaning: 'a coordinator watch asked for history that was compacted (re-read and watch again)'},
  ECLOSED: {exit: 1, http: 503, meaning: 'the coordinator connection was closed while in use'},
  EUSAGE: {exit: 2, http: 400, meaning: 'a bad command line (unknown flag, missing argument)'},
} as const satisfies Record<string, ErrorDisposition>

export type ErrorCode = keyof typeof ERROR_TABLE

/** The disposition of a code; an unknown code is a failed operation (exit 1, HTTP 500). */
export function dispositionOf(code: string): ErrorDisposition {
  return (ERROR_TABLE as Record<string, ErrorDisposition>)[code] ?? {exit: 1, http: 500, meaning: 'unexpected error'}
}

export class RstoreError extends Error {
  /** How to fix it, in the user's terms; the front-end shows it after the message. */
  hint?: string

  constructor(
    readonly code: ErrorCode,
    message: string,
    hint?: string,
  ) {
    super(message)
    this.name = 'RstoreError'
    if (hint) this.hint = hint
  }

  get exitCode(): number {
    return dispositionOf(this.code).exit
  }

  get httpStatus(): number {
    return dispositionOf(this.code).http
  }

  /** The error as the HTTP API sends it. */
  toJSON(): {code: string; message: string; hint?: string} {
    return {code: this.code, message: this.message, ...(this.hint ? {hint: this.hint} : {})}
  }
}

/** The message and its hint as one line (the CLI's rendering). */
export function errorLine(err: RstoreError): string {
  return err.hint ? `${err.message}; ${err.hint}` : err.message
}

/** Input that is malformed or out of range (bad slot, bad address, reversed range). */
export class ValidationError extends RstoreError {
  constructor(message: string, hint?: string) {
    super('EINVAL', message, hint)
    this.name = 'ValidationError'
  }
}

/** Something named does not exist (a group, a server, a proxy, a job). */
export class NotFoundError extends RstoreError {
  constructor(message: string, hint?: string) {
    super('ENOTFOUND', message, hint)
    this.name = 'NotFoundError'
  }
}

/** The request conflicts with the current state (migrating slot, second master, job running). */
export class ConflictError extends RstoreError {
  constructor(message: string, hint?: string) {
    super('ECONFLICT', message, hint)
    this.name = 'ConflictError'
  }
}

/** A server or the coordinator could not be reached. */
export class UnreachableError extends RstoreError {
  constructor(message: string, hint?: string) {
    super('EUNREACHABLE', message, hint)
    this.name = 'UnreachableError'
  }
}

/** A listen() that failed, as one line naming the flag: a port in use is a conflict, the rest bad input. */
export function listenRefused(flag: string, addr: string, err: NodeJS.ErrnoException): RstoreError {
  if (err.code === 'EADDRINUSE') return new ConflictError(`cannot listen on ${addr} (${flag}): address already in use`, 'stop what listens there or choose another port')
  return new ValidationError(`cannot listen on ${addr} (${flag}): ${err.code ?? err.message}`)
}
