import { BOOTSTRAP, startTestApp, type TestApp } from '../support/app';
import { query } from '../support/db';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ RACKSMITH_BODY_LIMIT: '4096' });
});
afterAll(() => t?.close());

async function token(role: string, name = `${role}-token`) {
  const res = await t.request({ method: 'POST', url: '/api/v1/tokens', body: { name, role } });
  expect(res.status).toBe(201);
  return res.json as { id: string; token: string };
}

describe('API conventions', () => {
  it('answers /health with the database state and no token', async () => {
    const res = await t.request({ url: '/health', token: '' });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ status: 'ok', role: 'all', checks: { database: { status: 'ok' } } });
  });

  it('puts a request id on every response and honours a valid one from the caller', async () => {
    const a = await t.request({ url: '/health', token: '' });
    expect(a.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    const b = await t.request({ url: '/api/v1/nowhere', token: '', headers: { 'x-request-id': 'billing-retry-7' } });
    expect(b.headers['x-request-id']).toBe('billing-retry-7');
    const c = await t.request({ url: '/health', token: '', headers: { 'x-request-id': 'bad id with spaces' } });
    expect(c.headers['x-request-id']).not.toBe('bad id with spaces');
  });

  it('answers an unknown route with a JSON 404', async () => {
    const res = await t.request({ url: '/api/v1/nowhere?x=1', token: '' });
    expect(res.status).toBe(404);
    expect(res.json).toEqual({ error: { code: 'route_not_found', message: 'no route GET /api/v1/nowhere' } });
  });

  it('rejects malformed JSON with 400 and writes nothing', async () => {
    const before = await query(t.db.url, 'SELECT count(*)::int AS n FROM api_tokens');
    const res = await t.request({ method: 'POST', url: '/api/v1/tokens', payload: '{"name": "x", "role": ', headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(400);
    expect(res.json.error.code).toBe('malformed_json');
    const empty = await t.request({ method: 'POST', url: '/api/v1/tokens', payload: '', headers: { 'content-type': 'application/json' } });
    expect(empty.status).toBe(400);
    expect(empty.json.error.code).toBe('malformed_json');
    expect(await query(t.db.url, 'SELECT count(*)::int AS n FROM api_tokens')).toEqual(before);
  });

  it('rejects a body over the limit with 413', async () => {
    const res = await t.request({ method: 'POST', url: '/api/v1/tokens', body: { name: 'x'.repeat(5000), role: 'admin' } });
    expect(res.status).toBe(413);
    expect(res.json).toEqual({ error: { code: 'body_too_large', message: 'request body is larger than the limit of 4096 bytes' } });
  });

  it('rejects a non-JSON body with 415', async () => {
    const res = await t.request({ method: 'POST', url: '/api/v1/tokens', payload: 'name=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(res.status).toBe(415);
    expect(res.json.error.code).toBe('unsupported_media_type');
    const text = await t.request({ method: 'POST', url: '/api/v1/tokens', payload: '{}', headers: { 'content-type': 'text/plain' } });
    expect(text.status).toBe(415);
  });

  it('names the field at fault in a validation error', async () => {
    const res = await t.request({ method: 'POST', url: '/api/v1/tokens', body: { name: 'ok', role: 'overlord' } });
    expect(res.status).toBe(400);
    expect(res.json.error).toMatchObject({ code: 'validation_failed', field: 'role' });
    const extra = await t.request({ method: 'POST', url: '/api/v1/tokens', body: { name: 'ok', role: 'admin', isAdmin: true } });
    expect(extra.status).toBe(400);
    expect(extra.json.error.code).toBe('validation_failed');
    const past = await t.request({ method: 'POST', url: '/api/v1/tokens', body: { name: 'ok', role: 'admin', expiresAt: '2001-01-01T00:00:00Z' } });
    expect(past.json.error).toMatchObject({ code: 'validation_failed', field: 'expiresAt' });
    const badId = await t.request({ url: '/api/v1/tokens/not-a-uuid' });
    expect(badId.json.error).toMatchObject({ code: 'validation_failed', field: 'id' });
    const missing = await t.request({ url: '/api/v1/tokens/00000000-0000-4000-8000-000000000000' });
    expect(missing.status).toBe(404);
    expect(missing.json.error.code).toBe('not_found');
  });

  it('pages with an opaque cursor and rejects a forged one', async () => {
    for (let i = 0; i < 5; i++) await token('readonly', `page-${i}`);
    const seen: string[] = [];
    let cursor: string | null = null;
    for (let i = 0; i < 10; i++) {
      const res = await t.request({ url: `/api/v1/tokens?limit=2${cursor ? `&cursor=${cursor}` : ''}` });
      expect(res.status).toBe(200);
      expect(res.json.items.length).toBeLessThanOrEqual(2);
      seen.push(...res.json.items.map((x: { name: string }) => x.name));
      cursor = res.json.nextCursor;
      if (!cursor) break;
    }
    const pages = seen.filter((n) => n.startsWith('page-'));
    expect(pages).toEqual(['page-0', 'page-1', 'page-2', 'page-3', 'page-4']);
    expect(new Set(seen).size).toBe(seen.length);
    const forged = await t.request({ url: '/api/v1/tokens?cursor=bm9wZQ' });
    expect(forged.status).toBe(400);
    expect(forged.json.error.field).toBe('cursor');
    const tooMany = await t.request({ url: '/api/v1/tokens?limit=100000' });
    expect(tooMany.json.error).toMatchObject({ code: 'validation_failed', field: 'limit' });
  });

  it('exports Prometheus metrics and an OpenAPI document', async () => {
    await t.request({ url: '/health', token: '' });
    const metrics = await t.request({ url: '/metrics', token: '' });
    expect(metrics.status).toBe(200);
    expect(metrics.headers['content-type']).toMatch(/^text\/plain/);
    expect(metrics.text).toMatch(/racksmith_http_request_duration_seconds_count\{.*route="\/health",status="200"\} \d+/);
    expect(metrics.text).toContain('racksmith_process_cpu_seconds_total');
    const doc = await t.request({ url: '/docs/json', token: '' });
    expect(doc.status).toBe(200);
    expect(Object.keys(doc.json.paths)).toEqual(expect.arrayContaining(['/health', '/api/v1/tokens', '/api/v1/tokens/{id}', '/api/v1/audit', '/api/v1/whoami']));
    expect(doc.json.paths['/api/v1/tokens'].post.requestBody).toBeDefined();
    expect(doc.json.components.securitySchemes.bearer).toBeDefined();
    const ui = await t.request({ url: '/docs', token: '' });
    expect(ui.status).toBe(200);
    expect(ui.text).toContain('swagger');
  });
});

describe('tokens and roles', () => {
  it('answers 401 without a token, with a malformed header, and with an unknown token', async () => {
    const variants: Record<string, string>[] = [{}, { authorization: 'Basic YWRtaW46YWRtaW4=' }, { authorization: 'Bearer rs_unknown' }];
    for (const headers of variants) {
      const res = await t.request({ url: '/api/v1/whoami', token: '', headers });
      expect(res.status).toBe(401);
      expect(res.json.error.code).toBe('unauthenticated');
    }
  });

  it('accepts the bootstrap token as admin', async () => {
    const res = await t.request({ url: '/api/v1/whoami', token: BOOTSTRAP });
    expect(res.json).toEqual({ kind: 'bootstrap', name: 'bootstrap', role: 'admin' });
  });

  it('gives each role what it may do and 403 for the rest', async () => {
    const ro = await token('readonly');
    const eng = await token('engineer');
    const billing = await token('billing');
    expect((await t.request({ url: '/api/v1/whoami', token: ro.token })).json).toMatchObject({ role: 'readonly', name: 'readonly-token' });
    expect((await t.request({ url: '/api/v1/audit', token: ro.token })).status).toBe(200);
    expect((await t.request({ url: '/api/v1/audit', token: eng.token })).status).toBe(200);
    const denied = await t.request({ url: '/api/v1/audit', token: billing.token });
    expect(denied.status).toBe(403);
    expect(denied.json.error).toEqual({ code: 'forbidden', message: 'role billing may not do this; allowed: admin, engineer, support, readonly' });
    const create = await t.request({ method: 'POST', url: '/api/v1/tokens', token: eng.token, body: { name: 'sneaky', role: 'admin' } });
    expect(create.status).toBe(403);
    expect((await query(t.db.url, "SELECT 1 FROM api_tokens WHERE name = 'sneaky'")).length).toBe(0);
  });

  it('stores only a hash and shows the secret once', async () => {
    const created = await token('support');
    const rows = await query<{ token_hash: string }>(t.db.url, 'SELECT token_hash FROM api_tokens WHERE id = $1', [created.id]);
    expect(rows[0].token_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(rows[0].token_hash).not.toContain(created.token);
    const got = await t.request({ url: `/api/v1/tokens/${created.id}` });
    expect(got.json.token).toBeUndefined();
    expect(got.json.prefix).toBe(created.token.slice(0, 9));
  });

  it('stops a revoked token at once and an expired one after its time', async () => {
    const victim = await token('engineer', 'leaving-engineer');
    expect((await t.request({ url: '/api/v1/whoami', token: victim.token })).status).toBe(200);
    const revoked = await t.request({ method: 'DELETE', url: `/api/v1/tokens/${victim.id}` });
    expect(revoked.status).toBe(200);
    expect(revoked.json.revokedAt).not.toBeNull();
    expect((await t.request({ url: '/api/v1/whoami', token: victim.token })).status).toBe(401);
    // Revoking again changes nothing and records nothing new.
    expect((await t.request({ method: 'DELETE', url: `/api/v1/tokens/${victim.id}` })).status).toBe(200);
    expect(await query(t.db.url, "SELECT count(*)::int AS n FROM audit_events WHERE action = 'token.revoke' AND target_id = $1", [victim.id])).toEqual([{ n: 1 }]);
    // Listing hides revoked tokens unless asked.
    const active = await t.request({ url: '/api/v1/tokens?limit=500' });
    expect(active.json.items.map((x: { id: string }) => x.id)).not.toContain(victim.id);
    const all = await t.request({ url: '/api/v1/tokens?limit=500&includeRevoked=true' });
    expect(all.json.items.map((x: { id: string }) => x.id)).toContain(victim.id);

    const soon = await t.request({ method: 'POST', url: '/api/v1/tokens', body: { name: 'short-lived', role: 'readonly', expiresAt: new Date(Date.now() + 1500).toISOString() } });
    expect((await t.request({ url: '/api/v1/whoami', token: soon.json.token })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1700));
    expect((await t.request({ url: '/api/v1/whoami', token: soon.json.token })).status).toBe(401);
  });
});

describe('audit trail', () => {
  it('records who changed what, with the request id and no secret', async () => {
    const res = await t.request({ method: 'POST', url: '/api/v1/tokens', body: { name: 'billing-prod', role: 'billing' }, headers: { 'x-request-id': 'audit-check-1' } });
    const id = res.json.id;
    const audit = await t.request({ url: `/api/v1/audit?targetType=api_token&targetId=${id}` });
    expect(audit.status).toBe(200);
    expect(audit.json.items).toHaveLength(1);
    expect(audit.json.items[0]).toMatchObject({
      source: 'api',
      action: 'token.create',
      actor: { name: 'bootstrap', kind: 'bootstrap', role: 'admin' },
      target: { type: 'api_token', id },
      requestId: 'audit-check-1',
      changes: { name: 'billing-prod', role: 'billing' },
    });
    const everything = await query(t.db.url, 'SELECT changes::text AS c FROM audit_events');
    expect(JSON.stringify(everything)).not.toContain(res.json.token);
  });

  it('filters by action prefix, actor, request id and time, newest first', async () => {
    const byPrefix = await t.request({ url: '/api/v1/audit?action=token.*&limit=500' });
    const actions = new Set(byPrefix.json.items.map((e: { action: string }) => e.action));
    expect([...actions].sort()).toEqual(['token.create', 'token.revoke']);
    const ids = byPrefix.json.items.map((e: { id: string }) => Number(e.id));
    expect(ids).toEqual([...ids].sort((a, b) => b - a));
    const byReq = await t.request({ url: '/api/v1/audit?requestId=audit-check-1' });
    expect(byReq.json.items).toHaveLength(1);
    const byActor = await t.request({ url: '/api/v1/audit?actor=nobody-at-all' });
    expect(byActor.json.items).toEqual([]);
    const future = await t.request({ url: '/api/v1/audit?since=2999-01-01' });
    expect(future.json.items).toEqual([]);
    const backwards = await t.request({ url: '/api/v1/audit?since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z' });
    expect(backwards.json.error).toMatchObject({ code: 'validation_failed', field: 'since' });
    const badTime = await t.request({ url: '/api/v1/audit?since=yesterday' });
    expect(badTime.json.error).toMatchObject({ code: 'validation_failed', field: 'since' });
  });

  it('keeps nothing of a change that failed', async () => {
    const before = await query(t.db.url, 'SELECT count(*)::int AS n FROM audit_events');
    await t.request({ method: 'DELETE', url: '/api/v1/tokens/00000000-0000-4000-8000-000000000000' });
    await t.request({ method: 'POST', url: '/api/v1/tokens', body: { name: '', role: 'admin' } });
    expect(await query(t.db.url, 'SELECT count(*)::int AS n FROM audit_events')).toEqual(before);
  });
});
