/**
 * The API's error body `{error: {code, message, hint}}` (docs/dashboard.md "Errors"): an RstoreError
 * keeps its code and the HTTP status of ERROR_TABLE; auth refusals, fastify's own validation and
 * parse errors and unknown routes get the same shape.
 */
import {RstoreError} from '../errors.js'

export interface ErrorBody {
  error: {code: string; message: string; hint?: string}
}

/** A refusal that belongs to HTTP only (no token, wrong token): not a CLI error, so not in ERROR_TABLE. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly hint?: string,
  ) {
    super(message)
    this.name = 'HttpError'
  }
}

/** The status and body for any error thrown while handling a request. */
export function renderError(err: unknown): {status: number; body: ErrorBody} {
  if (err instanceof RstoreError) return {status: err.httpStatus, body: {error: err.toJSON()}}
  if (err instanceof HttpError) return {status: err.status, body: {error: {code: err.code, message: err.message, ...(err.hint ? {hint: err.hint} : {})}}}
  const e = err as {validation?: unknown; statusCode?: number; message?: string; code?: string}
  // fastify's schema validation, a body that is not JSON, a wrong content type, a body too large.
  if (e.validation || (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500)) {
    return {status: e.statusCode && e.statusCode !== 400 && !e.validation ? e.statusCode : 400, body: {error: {code: 'EINVAL', message: e.message ?? 'bad request'}}}
  }
  return {status: 500, body: {error: {code: 'EINTERNAL', message: e.message ?? String(err)}}}
}
