import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SETTINGS } from '../../src/config/config';

describe('README', () => {
  const readme = readFileSync(join(__dirname, '..', '..', 'README.md'), 'utf8');

  it('documents every setting with its YAML key and default', () => {
    for (const s of SETTINGS) {
      const def = s.default === undefined ? '(unset)' : `\`${s.default}\``;
      expect(readme).toContain(`| \`${s.env}\` | \`${s.key}\` | ${def} |`);
    }
  });

  it('gives the two commands and the test command', () => {
    expect(readme).toContain('npm install && npm start');
    expect(readme).toContain('npm test');
  });
});
