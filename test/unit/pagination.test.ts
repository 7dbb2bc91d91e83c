import { decodeCursor, encodeCursor, toPage } from '../../src/common/pagination';
import { ValidationError } from '../../src/common/errors';

describe('cursor pagination', () => {
  it('round-trips a cursor and rejects one it did not make', () => {
    expect(decodeCursor(encodeCursor('42'))).toBe('42');
    expect(decodeCursor(undefined)).toBeUndefined();
    expect(() => decodeCursor('!!!')).toThrow(ValidationError);
    expect(() => decodeCursor('')).toThrow(ValidationError);
  });

  it('hands out a next cursor only when another page exists', () => {
    const rows = [1, 2, 3];
    expect(toPage(rows, 2, (r) => r, (r) => r * 10)).toEqual({ items: [10, 20], nextCursor: encodeCursor(2) });
    expect(toPage(rows, 3, (r) => r, (r) => r)).toEqual({ items: [1, 2, 3], nextCursor: null });
  });
});
