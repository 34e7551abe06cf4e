#!/usr/bin/env node
// The `switchboard` command. The code is compiled into dist/ by `npm run build`.
import('../dist/server/cli.js').then(
  ({ main }) => main(process.argv.slice(2)),
  (err) => {
    if (err?.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist/server/cli.js')) {
      process.stderr.write('switchboard: dist/ is not built: run npm run build in the repository first\n');
      process.exit(1);
    }
    throw err;
  },
);
