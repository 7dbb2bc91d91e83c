import { scrub } from '../../src/modules/audit/audit.service';

describe('audit scrub', () => {
  it('redacts values under secret-looking keys, at any depth', () => {
    expect(
      scrub({ name: 'bmc-7', password: 'p', bmc: { adminPassword: 'x', user: 'admin' }, grants: [{ apiToken: 't', id: 1 }], private_key: 'k', key: 'k2' }),
    ).toEqual({ name: 'bmc-7', password: '[redacted]', bmc: { adminPassword: '[redacted]', user: 'admin' }, grants: [{ apiToken: '[redacted]', id: 1 }], private_key: '[redacted]', key: '[redacted]' });
  });

  it('keeps ids and other values that merely mention a secret', () => {
    expect(scrub({ tokenId: 'a', passwordChangedAt: 'b', keyboard: 'c' })).toEqual({ tokenId: 'a', passwordChangedAt: 'b', keyboard: 'c' });
  });
});
