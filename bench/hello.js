'use strict';
// The reference: a bare Fastify hello world, same Fastify as racksmith, no logging.
const fastify = require('fastify')({ logger: false });
fastify.get('/', async () => ({ hello: 'world' }));
fastify.listen({ host: '127.0.0.1', port: Number(process.env.PORT) }).then(() => console.log('ready'));
