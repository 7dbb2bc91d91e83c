/** Benchmarks that need the TypeScript lab helpers of test/support run through jest (never part of `npm test`). */
const base = require('../jest.config');

module.exports = { ...base, rootDir: '..', roots: ['<rootDir>/bench'], testMatch: ['**/*.bench.ts'], testTimeout: 1_800_000 };
