import { startTestApp, type TestApp } from '../support/app';
import { query } from '../support/db';

let t: TestApp;
let rackId: string;
let modelId: string;
let alice: string;
let bob: string;
beforeAll(async () => {
  t = await startTestApp();
  const ok = async (method: string, url: string, body: unknown) => {
    const res = await t.request({ method, url: `/api/v1${url}`, body });
    if (res.status >= 300) throw new Error(res.text);
    return res.json;
  };
  await ok('POST', '/sites', { code: 'ez', name: 'Elektrozavodskaya', timezone: 'Europe/Moscow', visitHours: { opens: '09:00', closes: '21:00' } });
  rackId = (await ok('POST', '/racks', { site: 'ez', name: 'E01', heightU: 20 })).id;
  modelId = (await ok('POST', '/hardware-models', { vendor: 'Generic', model: 'Customer 1U', heightU: 1, maxDrawW: 500 })).id;
  alice = (await ok('POST', '/tokens', { name: 'alice', role: 'engineer' })).token;
  bob = (await ok('POST', '/tokens', { name: 'bob', role: 'engineer' })).token;
});
afterAll(() => t?.close());

const queue = async (state = 'open,claimed') => (await t.request({ url: `/api/v1/sites/ez/work-queue?state=${state}` })).json.items as { id: string; kind: string; title: string; state: string; ref: { id: string } }[];

describe('colocation equipment', () => {
  it('goes from announcement to removal, each step recorded and queued for the engineers', async () => {
    const announced = await t.request({ method: 'POST', url: '/api/v1/colocation/items', body: { site: 'ez', customerId: 'C-10023', name: 'c10023-web1', modelId, installBy: 'staff' } });
    expect(announced.status).toBe(201);
    const id = announced.json.id;
    expect(announced.json).toMatchObject({ state: 'expected', customerId: 'C-10023', history: [{ step: 'announced', by: 'bootstrap' }] });
    expect((await queue()).filter((q) => q.ref?.id === id).map((q) => q.kind)).toEqual(['intake']);

    const received = await t.request({ method: 'POST', url: `/api/v1/colocation/items/${id}/receive`, token: alice, body: { location: 'delivery-point', serials: ['CN-777-A'], condition: 'good' } });
    expect(received.json).toMatchObject({ state: 'received', received: { by: 'alice', location: 'delivery-point', serials: ['CN-777-A'], condition: 'good' } });
    const device = (await t.request({ url: `/api/v1/devices/${received.json.deviceId}` })).json;
    expect(device).toMatchObject({ role: 'colocation', customerId: 'C-10023', serial: 'CN-777-A', placement: null });
    const open = (await queue()).filter((q) => q.ref?.id === id);
    expect(open.map((q) => q.kind)).toEqual(['staff-installation']);
    expect(open[0].title).toContain('delivery point');

    const installed = await t.request({ method: 'POST', url: `/api/v1/colocation/items/${id}/install`, token: bob, body: { placement: { rack: rackId, position: 5, face: 'front' } } });
    expect(installed.json).toMatchObject({ state: 'installed', installed: { by: 'bob' } });
    expect((await t.request({ url: `/api/v1/devices/${received.json.deviceId}` })).json.placement).toMatchObject({ rackId, position: 5 });
    expect((await queue()).filter((q) => q.ref?.id === id)).toEqual([]);

    const asked = await t.request({ method: 'POST', url: `/api/v1/colocation/items/${id}/removal-request`, body: {} });
    expect(asked.status).toBe(201);
    expect((await queue()).filter((q) => q.ref?.id === id).map((q) => q.kind)).toEqual(['removal']);
    const removed = await t.request({ method: 'POST', url: `/api/v1/colocation/items/${id}/remove`, token: alice, body: { notes: 'handed to the owner' } });
    expect(removed.json).toMatchObject({ state: 'removed', removed: { by: 'alice' } });
    expect(removed.json.history.map((h: { step: string; by: string }) => `${h.step}:${h.by}`)).toEqual(['announced:bootstrap', 'received:alice', 'installed:bob', 'removal-requested:bootstrap', 'removed:alice']);
    expect((await t.request({ url: `/api/v1/devices/${received.json.deviceId}` })).json.placement).toBeNull();
    expect((await queue('done')).filter((q) => q.ref?.id === id).map((q) => q.kind).sort()).toEqual(['intake', 'removal', 'staff-installation']);
  });

  it('refuses steps out of order, naming the state, and changes nothing', async () => {
    const item = (await t.request({ method: 'POST', url: '/api/v1/colocation/items', body: { site: 'ez', customerId: 'C-2', name: 'c2-box', modelId, installBy: 'owner' } })).json;
    const early = await t.request({ method: 'POST', url: `/api/v1/colocation/items/${item.id}/install`, body: { placement: { rack: rackId, position: 9, face: 'front' } } });
    expect(early.status).toBe(409);
    expect(early.json.error).toMatchObject({ code: 'illegal_transition', details: { state: 'expected' } });
    expect(early.json.error.message).toContain('is expected');
    await t.request({ method: 'POST', url: `/api/v1/colocation/items/${item.id}/receive`, body: { location: 'data-center', serials: ['X1'], condition: 'good' } });
    // Installed by its owner: no staff task.
    expect((await queue()).filter((q) => q.ref?.id === item.id)).toEqual([]);
    const again = await t.request({ method: 'POST', url: `/api/v1/colocation/items/${item.id}/receive`, body: { location: 'data-center', serials: ['X1'], condition: 'good' } });
    expect(again.json.error).toMatchObject({ code: 'illegal_transition', details: { state: 'received' } });

    // Units taken: the inventory refuses, the item stays received, no event is written.
    const other = (await t.request({ method: 'POST', url: '/api/v1/devices', body: { site: 'ez', name: 'sw-e01', role: 'network', modelId, placement: { rack: rackId, position: 12, face: 'front' } } })).json;
    const events = await query(t.db.url, 'SELECT count(*)::int AS n FROM colocation_events WHERE item_id = $1', [item.id]);
    const taken = await t.request({ method: 'POST', url: `/api/v1/colocation/items/${item.id}/install`, body: { placement: { rack: rackId, position: 12, face: 'front' } } });
    expect(taken.status).toBe(409);
    expect(taken.json.error).toMatchObject({ code: 'rack_units_taken', details: { occupiedBy: [{ id: other.id }] } });
    expect((await t.request({ url: `/api/v1/colocation/items/${item.id}` })).json.state).toBe('received');
    expect(await query(t.db.url, 'SELECT count(*)::int AS n FROM colocation_events WHERE item_id = $1', [item.id])).toEqual(events);
  });
});

describe('work queue', () => {
  it('lets one engineer claim a task and only that engineer complete it', async () => {
    await t.request({ method: 'POST', url: '/api/v1/colocation/items', body: { site: 'ez', customerId: 'C-3', name: 'c3-box', modelId, installBy: 'staff' } });
    const task = (await queue()).find((q) => q.title.includes('c3-box'))!;
    const claimed = await t.request({ method: 'POST', url: `/api/v1/work-tasks/${task.id}/claim`, token: alice });
    expect(claimed.json).toMatchObject({ state: 'claimed', claimedBy: 'alice' });
    const late = await t.request({ method: 'POST', url: `/api/v1/work-tasks/${task.id}/claim`, token: bob });
    expect(late.status).toBe(409);
    expect(late.json.error).toMatchObject({ code: 'task_not_open', message: 'task is already claimed by alice' });
    const notYours = await t.request({ method: 'POST', url: `/api/v1/work-tasks/${task.id}/complete`, token: bob, body: {} });
    expect(notYours.json.error.code).toBe('task_not_claimed_by_you');
    const done = await t.request({ method: 'POST', url: `/api/v1/work-tasks/${task.id}/complete`, token: alice, body: { result: 'checked in, shelf 3' } });
    expect(done.json).toMatchObject({ state: 'done', completedBy: 'alice', result: 'checked in, shelf 3' });
  });

  it('gives a task to exactly one of ten engineers claiming at once', async () => {
    await t.request({ method: 'POST', url: '/api/v1/colocation/items', body: { site: 'ez', customerId: 'C-4', name: 'c4-box', modelId, installBy: 'owner' } });
    const task = (await queue()).find((q) => q.title.includes('c4-box'))!;
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => t.request({ method: 'POST', url: `/api/v1/work-tasks/${task.id}/claim`, token: i % 2 ? alice : bob })));
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    expect(results.filter((r) => r.status === 409)).toHaveLength(9);
  });
});

describe('visit bookings', () => {
  const tomorrowAt = (hhmm: string, days = 1) => {
    const d = new Date(Date.now() + days * 86400_000);
    const day = new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Moscow' }).format(d);
    return `${day}T${hhmm}:00+03:00`;
  };
  const book = (startsAt: string, endsAt: string) =>
    t.request({ method: 'POST', url: '/api/v1/visits', body: { site: 'ez', customerId: 'C-10023', startsAt, endsAt, visitors: [{ name: 'Ivan Petrov' }], purpose: 'swap a disk' } });

  it('books inside the visiting hours, and staff approve or decline once', async () => {
    const res = await book(tomorrowAt('10:00'), tomorrowAt('12:30'));
    expect(res.status).toBe(201);
    expect(res.json.state).toBe('requested');
    expect((await queue()).filter((q) => q.ref?.id === res.json.id).map((q) => q.kind)).toEqual(['visit-approval']);
    const approved = await t.request({ method: 'POST', url: `/api/v1/visits/${res.json.id}/approve`, token: alice, body: { note: 'badge at the gate' } });
    expect(approved.json).toMatchObject({ state: 'approved', decidedBy: 'alice', decisionNote: 'badge at the gate' });
    expect((await queue()).filter((q) => q.ref?.id === res.json.id)).toEqual([]);
    const twice = await t.request({ method: 'POST', url: `/api/v1/visits/${res.json.id}/decline`, body: {} });
    expect(twice.json.error).toMatchObject({ code: 'illegal_transition', details: { state: 'approved' } });
  });

  it('refuses a window the site does not allow, naming the field and the hours', async () => {
    const early = await book(tomorrowAt('07:30'), tomorrowAt('10:00'));
    expect(early.status).toBe(400);
    expect(early.json.error).toMatchObject({ code: 'outside_visit_hours', field: 'startsAt', details: { opens: '09:00', closes: '21:00', timezone: 'Europe/Moscow' } });
    expect(early.json.error.message).toContain('09:00–21:00');
    const late = await book(tomorrowAt('20:00'), tomorrowAt('21:30'));
    expect(late.json.error).toMatchObject({ code: 'outside_visit_hours', field: 'endsAt' });
    const overnight = await book(tomorrowAt('20:00'), tomorrowAt('10:00', 2));
    expect(overnight.json.error).toMatchObject({ code: 'outside_visit_hours', field: 'endsAt' });
    const past = await book('2020-01-01T10:00:00+03:00', '2020-01-01T11:00:00+03:00');
    expect(past.json.error).toMatchObject({ code: 'validation_failed', field: 'startsAt' });
    const backwards = await book(tomorrowAt('12:00'), tomorrowAt('11:00'));
    expect(backwards.json.error).toMatchObject({ field: 'endsAt' });
    const nobody = await t.request({ method: 'POST', url: '/api/v1/visits', body: { site: 'ez', customerId: 'C-1', startsAt: tomorrowAt('10:00'), endsAt: tomorrowAt('11:00'), visitors: [] } });
    expect(nobody.json.error).toMatchObject({ code: 'validation_failed', field: 'visitors' });
    expect(await query(t.db.url, "SELECT count(*)::int AS n FROM visit_bookings WHERE purpose = 'swap a disk' AND state = 'requested'")).toEqual([{ n: 0 }]);
  });
});
