import { createHmac, timingSafeEqual } from 'node:crypto';
import { DomainError } from '../../common/errors';

/** The header both directions carry: `Racksmith-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`. */
export const SIGNATURE_HEADER = 'racksmith-signature';

/** HMAC-SHA256 over `<timestamp>.<raw body>`, hex. */
export function signature(secret: string, timestamp: number, body: Buffer | string): string {
  return createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex');
}

/** The header value for a body sent now (or at `timestamp`). */
export function signatureHeader(secret: string, body: Buffer | string, timestamp = Math.floor(Date.now() / 1000)): string {
  return `t=${timestamp},v1=${signature(secret, timestamp, body)}`;
}

export class SignatureError extends DomainError {
  constructor(code: 'missing_signature' | 'malformed_signature' | 'stale_signature' | 'bad_signature', message: string) {
    super(code, message, 401, SIGNATURE_HEADER);
  }
}

/**
 * Check a signed body: the header parses, its timestamp is within `toleranceSeconds` of now, and
 * one of its v1 values is the HMAC of one of the secrets (two during a rotation). Compared in
 * constant time. Throws a SignatureError (401) saying which part failed.
 */
export function verifySignature(header: string | string[] | undefined, body: Buffer, secrets: readonly string[], toleranceSeconds: number, nowMs = Date.now()): void {
  if (typeof header !== 'string' || !header) throw new SignatureError('missing_signature', 'the Racksmith-Signature header is missing');
  let timestamp: number | undefined;
  const given: Buffer[] = [];
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (key === 't' && /^\d{1,12}$/.test(value)) timestamp = Number(value);
    else if (key === 'v1' && /^[0-9a-f]{64}$/i.test(value)) given.push(Buffer.from(value, 'hex'));
  }
  if (timestamp === undefined || !given.length) throw new SignatureError('malformed_signature', 'the Racksmith-Signature header must read t=<unix seconds>,v1=<64 hex digits>');
  const skew = Math.abs(nowMs / 1000 - timestamp);
  if (skew > toleranceSeconds) throw new SignatureError('stale_signature', `the signature's timestamp is ${Math.round(skew)} s from now (tolerance ${toleranceSeconds} s): check the sender's clock, or this is a replay`);
  for (const secret of secrets) {
    const expected = Buffer.from(signature(secret, timestamp, body), 'hex');
    if (given.some((g) => timingSafeEqual(g, expected))) return;
  }
  throw new SignatureError('bad_signature', 'the signature does not match the body with any configured secret');
}
