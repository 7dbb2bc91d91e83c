/** Unit tests sit in test/unit, integration tests (real PostgreSQL, real peers) in test/integration. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.(t|j)s$': ['@swc/jest'] },
  // @fastify/static (for the /docs UI) loads content-disposition 3, an ES module. Node >= 20.19
  // requires it natively; jest's module loader cannot, so it is compiled for the tests.
  transformIgnorePatterns: ['/node_modules/(?!(@fastify/static/node_modules/)?content-disposition/)'],
  testTimeout: 30000,
  // The PostgreSQL of the integration tests: the machine's, or an embedded one (test/support/global-pg.ts).
  globalSetup: '<rootDir>/test/support/global-setup.ts',
  globalTeardown: '<rootDir>/test/support/global-teardown.ts',
};
