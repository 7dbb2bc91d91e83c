export { teardown as default } from './global-pg';
